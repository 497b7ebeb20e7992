"""Site for timm's ``Attention`` (``timm.layers.attention``): the fused-qkv site with timm's call signature."""
from __future__ import annotations

from torch import Tensor

from ..registry import SITES
from .fused_qkv import FusedQKVAttentionSite


@SITES.register_module()
class TimmAttentionSite(FusedQKVAttentionSite):
    """timm ``Attention`` run through :class:`FusedQKVAttentionSite` (qkv bias, ``q_norm``/``k_norm``, ``norm``).

    timm's ``Block`` calls its attention as ``attn(x, attn_mask=..., is_causal=...)``, so this site accepts the
    same keywords. ``attn_mask`` follows SDPA's convention, as in timm. The host refuses, at build time, timm
    options the fused-qkv site does not compute (``gated=True``, ``attn_head_dim`` giving a width other than the
    residual stream's).
    """

    targets = ('timm.layers.attention.Attention',)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        if is_causal:
            raise NotImplementedError(f'{self.info.name}: promptkit does not run timm attention with '
                                      'is_causal=True; pass an explicit attn_mask instead')
        return super().forward(x, attn_mask=attn_mask)
