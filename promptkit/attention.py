"""The one attention kernel every site calls.

``prompted_attention`` takes the host's own q, k, v (already projected by its frozen weights) plus optional
extra keys/values from a strategy, and runs one softmax over ``[k; extra_k]`` with
``F.scaled_dot_product_attention``. ``attention_reference`` is the same maths written out, for tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _expand_extra(extra: Tensor, ref: Tensor) -> Tensor:
    """Broadcast extra keys/values of shape (T, d), (H, T, d) or (B, H, T, d) to (B, H, T, d)."""
    B, H, _, d = ref.shape
    if extra.dim() == 2:
        extra = extra[None, None]
    elif extra.dim() == 3:
        extra = extra[None]
    return extra.to(ref.dtype).expand(B, H, extra.shape[-2], d)


def prompted_attention(q: Tensor, k: Tensor, v: Tensor, extra_k: Tensor | None = None,
                       extra_v: Tensor | None = None, *, scale: float | None = None, dropout_p: float = 0.0,
                       attn_mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention over the data tokens and, when given, appended extra keys/values.

    Args:
        q: Queries, (B, H, N, d).
        k: Keys, (B, H, S, d).
        v: Values, (B, H, S, d).
        extra_k: Extra keys appended after ``k``: (T, d), (H, T, d) or (B, H, T, d). Defaults to None.
        extra_v: Extra values, same shape as ``extra_k``. Defaults to None.
        scale: Multiplier of q·kᵀ. Defaults to ``d ** -0.5``.
        dropout_p: Attention dropout, applied by SDPA. Defaults to 0.
        attn_mask: Boolean or additive mask over the S data keys, (B or 1, H or 1, N, S); it is extended to
            let every query see every extra key. Defaults to None.

    Returns:
        The attention output, (B, H, N, d).
    """
    if (extra_k is None) != (extra_v is None):
        raise ValueError('extra_k and extra_v must be given together')
    if extra_k is not None:
        # Keys are ordered [data, prompts], as in the official APT code, so reductions run in the same order.
        k = torch.cat([k, _expand_extra(extra_k, k)], dim=2)  # (B, H, S+T, d)
        v = torch.cat([v, _expand_extra(extra_v, v)], dim=2)
        if attn_mask is not None:
            pad = attn_mask.new_ones if attn_mask.dtype == torch.bool else attn_mask.new_zeros
            attn_mask = torch.cat([attn_mask, pad(*attn_mask.shape[:-1], extra_k.shape[-2])], dim=-1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)


def attention_reference(q: Tensor, k: Tensor, v: Tensor, extra_k: Tensor | None = None,
                        extra_v: Tensor | None = None, *, scale: float | None = None) -> Tensor:
    """Plain-maths ``softmax(q·[k; extra_k]ᵀ·scale)·[v; extra_v]``, computed in float64, for tests."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v = q.double(), k.double(), v.double()
    if extra_k is not None:
        k = torch.cat([k, _expand_extra(extra_k, k).double()], dim=2)
        v = torch.cat([v, _expand_extra(extra_v, v).double()], dim=2)
    attn = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
    return attn @ v
