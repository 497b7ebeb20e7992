"""Site for ``torch.nn.MultiheadAttention`` (open_clip 3.3 default blocks; batch-first or sequence-first)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import prompted_attention
from ..core import SiteInfo
from ..registry import SITES
from .base import ForwardSite


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``nn.MultiheadAttention`` mask semantics as an additive float mask: a boolean True means *masked out*."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float('-inf'))
    return mask.to(dtype)


@SITES.register_module()
class MultiheadAttentionSite(ForwardSite):
    """Runs ``nn.MultiheadAttention`` through the one SDPA kernel, with the strategy's hooks.

    q/k/v come from the module's own ``in_proj_weight``/``in_proj_bias`` (or ``q/k/v_proj_weight`` when
    ``kdim``/``vdim`` differ), heads are split, :func:`~promptkit.attention.prompted_attention` runs, and
    ``out_proj`` projects. Both layouts work: (B, L, E) with ``batch_first=True`` (open_clip >= 2.32) and
    (L, B, E) otherwise, plus unbatched (L, E) inputs. ``attn_mask`` ((L, S) or (B·H, L, S)) and
    ``key_padding_mask`` ((B, S)), boolean or additive, combine as in PyTorch.

    Not supported, refused with a clear error: ``need_weights=True`` (SDPA forms no attention weights; callers
    must pass ``need_weights=False``, as open_clip does), ``is_causal`` without ``attn_mask``, and modules built with
    ``add_bias_kv`` or ``add_zero_attn``. The second return value is always None.
    """

    targets = (nn.MultiheadAttention,)
    hook_names = ('extra_kv', 'attn_output')

    def __init__(self, module: nn.Module, info: SiteInfo, strategy: nn.Module | None = None) -> None:
        if module.bias_k is not None or module.add_zero_attn:
            raise TypeError(f'{info.name}: nn.MultiheadAttention with add_bias_kv or add_zero_attn is not supported '
                            'by promptkit')
        super().__init__(module, info, strategy)

    def _project(self, query: Tensor, key: Tensor, value: Tensor, self_attn: bool) -> tuple[Tensor, Tensor, Tensor]:
        m = self.module
        if m._qkv_same_embed_dim and self_attn:
            return F.linear(query, m.in_proj_weight, m.in_proj_bias).chunk(3, dim=-1)
        if m._qkv_same_embed_dim:
            w_q, w_k, w_v = m.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
        b_q, b_k, b_v = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, None]:
        m, info = self.module, self.info
        if need_weights:
            raise NotImplementedError(f'{info.name}: promptkit runs nn.MultiheadAttention through SDPA, which '
                                      'returns no attention weights; call it with need_weights=False')
        if is_causal and attn_mask is None:
            raise ValueError(f'{info.name}: is_causal=True needs attn_mask, as in nn.MultiheadAttention')
        self_attn = query is key and key is value
        unbatched = query.dim() == 2
        if unbatched:  # (L, E) -> (1, L, E)
            query, key, value = query[None], key[None], value[None]
            key_padding_mask = None if key_padding_mask is None else key_padding_mask[None]
        elif not m.batch_first:  # (L, B, E) -> (B, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        B, L, E = query.shape
        S, H, d = key.shape[1], info.num_heads, info.head_dim

        q, k, v = self._project(query, key, value, self_attn)
        q = q.reshape(B, L, H, d).transpose(1, 2)  # (B, H, L, d)
        k = k.reshape(B, S, H, d).transpose(1, 2)  # (B, H, S, d)
        v = v.reshape(B, S, H, d).transpose(1, 2)

        mask = None
        if attn_mask is not None:
            mask = additive_mask(attn_mask, q.dtype)
            if mask.dim() == 3:  # (B·H, L, S) -> (B, H, L, S)
                mask = mask.reshape(B, H, L, S)
        if key_padding_mask is not None:
            pad = additive_mask(key_padding_mask, q.dtype).reshape(B, 1, 1, S)
            mask = pad if mask is None else mask + pad

        extra = self.strategy.extra_kv(info, q) if 'extra_kv' in self.active else (None, None)
        dropout_p = m.dropout if m.training else 0.0
        out = prompted_attention(q, k, v, *extra, dropout_p=dropout_p, attn_mask=mask)
        out = out.transpose(1, 2).reshape(B, L, E)  # (B, L, E)
        out = F.linear(out, m.out_proj.weight, m.out_proj.bias)
        if 'attn_output' in self.active:  # nn.MultiheadAttention has no output dropout; query is (B, L, E) here
            out = out + self.strategy.attn_output(info, query, out)

        if unbatched:
            out = out[0]
        elif not m.batch_first:
            out = out.transpose(0, 1)  # (B, L, E) -> (L, B, E)
        return out, None
