"""Site for attention with a fused ``qkv`` projection: mmaction2 VideoMAE ``Attention`` and timm ``Attention``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attention import prompted_attention
from ..registry import SITES
from .base import ForwardSite


@SITES.register_module()
class FusedQKVAttentionSite(ForwardSite):
    """Runs the host's fused-qkv attention through the one SDPA kernel, with the strategy's hooks.

    Understands mmaction2's ``vit_mae.Attention`` (``qkv`` without bias plus ``q_bias``/``v_bias``, ``scale``)
    and timm's ``Attention`` (``qkv`` with bias, optional ``q_norm``/``k_norm``/``norm``). Replaces
    mmaction2's hand-written softmax attention, so a prompted VideoMAE is also a faster one.
    """

    targets = ('mmaction.models.backbones.vit_mae.Attention',)
    hook_names = ('extra_kv', 'attn_output')

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        m, info = self.module, self.info
        B, N, C = x.shape
        bias = self._qkv_bias() if getattr(m, 'q_bias', None) is not None else m.qkv.bias
        qkv = F.linear(x, m.qkv.weight, bias)
        qkv = qkv.reshape(B, N, 3, info.num_heads, info.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, N, d)
        q, k, v = qkv.unbind(0)
        if hasattr(m, 'q_norm'):  # timm
            q, k = m.q_norm(q), m.k_norm(k)
        extra = self.strategy.extra_kv(info, q) if 'extra_kv' in self.active else (None, None)
        dropout_p = m.attn_drop.p if m.training else 0.0
        out = prompted_attention(q, k, v, *extra, scale=m.scale, dropout_p=dropout_p, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        if hasattr(m, 'norm'):  # timm's optional attention-output norm
            out = m.norm(out)
        out = m.proj(out)
        if 'attn_output' in self.active:  # after the projection, before its dropout (Approximated Prompt Tuning)
            out = out + self.strategy.attn_output(info, x, out)
        return m.proj_drop(out)

    def _qkv_bias(self) -> Tensor:
        """mmaction2 VideoMAE's fused bias ``[q_bias; 0; v_bias]`` (k has none). Built at every call: a cache
        would miss in-place updates made through ``.data`` (EMA hooks), and it is two O(C) kernels."""
        q, v = self.module.q_bias, self.module.v_bias
        return torch.cat((q, torch.zeros_like(v), v))
