"""Site for open_clip's own ``Attention`` (``open_clip.transformer.Attention``, used by ``block_type='custom'``)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import prompted_attention
from ..core import SiteInfo
from ..registry import SITES
from .base import ForwardSite
from .mha import additive_mask


@SITES.register_module()
class OpenCLIPAttentionSite(ForwardSite):
    """Runs open_clip's ``Attention`` through the one SDPA kernel, with the strategy's hooks.

    Handles its ``in_proj_weight``/``in_proj_bias``, QK norm (``ln_q``/``ln_k``, applied before any extra keys are
    appended, so prompts live in the normalised key space), per-head output scale (``head_scale``), ``ln_inner``,
    ``out_proj``/``out_drop``, and ``attn_mask`` with open_clip's semantics ((L, L) or (B·H, L, L); boolean True
    masks out). Scaled cosine attention (``scaled_cosine=True``) is refused: open_clip 3.3's own path for it fails
    (``torch.bmm`` on 4-D tensors), so there is no reference behaviour to reproduce.
    """

    targets = ('open_clip.transformer.Attention',)
    hook_names = ('extra_kv', 'attn_output')

    def __init__(self, module: nn.Module, info: SiteInfo, strategy: nn.Module | None = None) -> None:
        if getattr(module, 'logit_scale', None) is not None:
            raise TypeError(f'{info.name}: open_clip Attention with scaled_cosine=True is not supported (open_clip '
                            "3.3's own forward fails for it); build the tower without scaled_cosine_attn")
        super().__init__(module, info, strategy)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        m, info = self.module, self.info
        B, L, C = x.shape
        H, d = info.num_heads, info.head_dim
        q, k, v = F.linear(x, m.in_proj_weight, m.in_proj_bias).chunk(3, dim=-1)
        q = q.reshape(B, L, H, d).transpose(1, 2)  # (B, H, L, d)
        k = k.reshape(B, L, H, d).transpose(1, 2)
        v = v.reshape(B, L, H, d).transpose(1, 2)
        if attn_mask is not None:
            attn_mask = additive_mask(attn_mask, q.dtype)
            if attn_mask.dim() == 3:  # (B·H, L, L) -> (B, H, L, L)
                attn_mask = attn_mask.reshape(B, H, L, L)
        q, k = m.ln_q(q), m.ln_k(k)
        extra = self.strategy.extra_kv(info, q) if 'extra_kv' in self.active else (None, None)
        dropout_p = m.attn_drop.p if m.training else 0.0
        out = prompted_attention(q, k, v, *extra, scale=m.scale, dropout_p=dropout_p, attn_mask=attn_mask)
        if m.head_scale is not None:
            out = out * m.head_scale  # (H, 1, 1) per-head scale
        out = out.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        out = m.out_proj(m.ln_inner(out))
        if 'attn_output' in self.active:  # after the projection, before its dropout (Approximated Prompt Tuning)
            out = out + self.strategy.attn_output(info, x, out)
        return m.out_drop(out)
