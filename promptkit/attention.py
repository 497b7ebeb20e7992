"""The one attention kernel every site calls.

``prompted_attention`` takes the host's own q, k, v (already projected by its frozen weights) plus optional
extra keys/values from a strategy, and computes one softmax over ``[k; extra_k]``. Two implementations give the
same maths:

- ``'concat'``: append the extra keys/values and call ``F.scaled_dot_product_attention`` once. Any backend,
  dropout and masks; costs a copy of K and V per call and, in training, keeps the concatenated copies for backward.
- ``'split'``: two fused passes, one over the data keys and one over the T extra keys, each returning its
  softmax's log-sum-exp (LSE), merged exactly through the LSEs (the merge ring attention uses). The backward
  hands the *merged* output and LSE to each pass's own fused backward, which then yields exactly that pass's
  share of the joint gradient. No copy of K/V is made or kept for backward. Runs without dropout or mask, on the
  CPU flash kernel and on CUDA's flash kernel (fp16/bf16).

``'auto'`` (the default) picks ``'concat'`` for now: the split path has been verified against the maths reference
on CPU only, and which one is faster on a GPU is what ``tools/analysis/benchmark_gpu.py`` measures.
``attention_reference`` is the same maths written out in float64, for tests.

PyTorch has no public SDPA entry point that returns the LSE with a gradient path, so the split path calls the
fused kernels' ``aten`` ops directly, as ``torch.distributed``'s context-parallel attention does.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

IMPLS = ('auto', 'concat', 'split')
_impl = 'auto'


@contextlib.contextmanager
def attention_impl(impl: str) -> Iterator[None]:
    """Choose how ``prompted_attention`` computes prompted attention inside the ``with`` block.

    Args:
        impl: ``'auto'``, ``'concat'`` or ``'split'`` (see the module docstring).

    Examples:
        >>> with attention_impl('split'):
        ...     logits = model(clips)
    """
    global _impl
    if impl not in IMPLS:
        raise ValueError(f'unknown attention impl {impl!r}; choose one of {IMPLS}')
    previous, _impl = _impl, impl
    try:
        yield
    finally:
        _impl = previous


def _expand_extra(extra: Tensor, ref: Tensor) -> Tensor:
    """Broadcast extra keys/values of shape (T, d), (H, T, d) or (B, H, T, d) to (B, H, T, d)."""
    B, H, _, d = ref.shape
    if extra.dim() == 2:
        extra = extra[None, None]
    elif extra.dim() == 3:
        extra = extra[None]
    return extra.to(ref.dtype).expand(B, H, extra.shape[-2], d)


def split_supported(q: Tensor, dropout_p: float = 0.0, attn_mask: Tensor | None = None) -> str | None:
    """Why the split path cannot run these inputs, or None when it can."""
    if dropout_p > 0:
        return 'attention dropout is on'
    if attn_mask is not None:
        return 'an attention mask is given'
    if q.device.type == 'cuda':
        if q.dtype not in (torch.float16, torch.bfloat16):
            return f'CUDA flash attention needs fp16/bf16, got {q.dtype}'
        if q.shape[-1] > 256 or q.shape[-1] % 8:
            return f'CUDA flash attention needs a head width that is a multiple of 8 up to 256, got {q.shape[-1]}'
    elif q.device.type != 'cpu':
        return f'no fused kernel with a log-sum-exp is wired up for {q.device.type}'
    return None


def _fused_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor, tuple]:
    """Fused attention: output (B, H, N, d), LSE (B, H, N) (float32 for half inputs), and backward state."""
    if q.device.type == 'cpu':
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)
        return out, lse, ()
    out, lse, cum_q, cum_k, max_q, max_k, seed, offset, _ = torch.ops.aten._scaled_dot_product_flash_attention(
        q, k, v, 0.0, False, False, scale=scale)
    return out, lse, (cum_q, cum_k, max_q, max_k, seed, offset)


def _fused_attention_backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                             scale: float, state: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """The fused kernel's own backward (dq, dk, dv), fed the output and LSE of a larger softmax ``k`` is part of."""
    if q.device.type == 'cpu':
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout, q, k, v, out, lse, 0.0, False, scale=scale)
    cum_q, cum_k, max_q, max_k, seed, offset = state
    return torch.ops.aten._scaled_dot_product_flash_attention_backward(
        dout, q, k, v, out, lse, cum_q, cum_k, max_q, max_k, 0.0, False, seed, offset, scale=scale)[:3]


class _SplitAttention(torch.autograd.Function):
    """softmax(q·[k; pk]ᵀ·scale)·[v; pv] as two fused passes, over k and over the T extra keys, merged by LSE."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, pk: Tensor, pv: Tensor, scale: float) -> Tensor:
        out_d, lse_d, state_d = _fused_attention(q, k, v, scale)
        out_p, lse_p, state_p = _fused_attention(q, pk, pv, scale)
        # Joint softmax = the two partial ones weighted by their shares of the total mass exp(lse_d) + exp(lse_p).
        lse = torch.logaddexp(lse_d, lse_p)
        out = torch.lerp(out_d, out_p, torch.sigmoid(lse_p - lse_d)[..., None].to(q.dtype))
        ctx.save_for_backward(q, k, v, pk, pv, out, lse)
        ctx.scale, ctx.states = scale, (state_d, state_p)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        q, k, v, pk, pv, out, lse = ctx.saved_tensors
        dout = dout.contiguous()
        # Given the merged output and LSE, each part's backward yields exactly its keys' share of the joint
        # gradient (it recomputes P = exp(q·kᵀ·scale - lse) and uses rowsum(dout ∘ out)).
        dq, dk, dv = _fused_attention_backward(dout, q, k, v, out, lse, ctx.scale, ctx.states[0])
        dq_p, dpk, dpv = _fused_attention_backward(dout, q, pk, pv, out, lse, ctx.scale, ctx.states[1])
        return dq + dq_p, dk, dv, dpk, dpv, None


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
    if extra_k is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    extra_k, extra_v = _expand_extra(extra_k, k), _expand_extra(extra_v, v)
    if _impl == 'split':
        reason = split_supported(q, dropout_p, attn_mask)
        if reason is not None:
            raise ValueError(f"attention_impl('split') cannot run here: {reason}; use 'auto' or 'concat'")
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        return _SplitAttention.apply(q, k, v, extra_k.contiguous(), extra_v.contiguous(), scale)
    # Keys are ordered [data, prompts], as in the official APT code, so reductions run in the same order.
    k = torch.cat([k, extra_k], dim=2)  # (B, H, S+T, d)
    v = torch.cat([v, extra_v], dim=2)
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
