"""Sites for open_clip's transformer blocks: ``ResidualAttentionBlock`` and ``CustomResidualAttentionBlock``."""
from __future__ import annotations

from torch import Tensor

from ..registry import SITES
from .base import ForwardSite


def _token_count_kept(name: str, before: int, after: int, attn_mask: Tensor | None) -> None:
    if attn_mask is not None and after != before:
        raise ValueError(f'{name}: the prompt changed the token count ({before} -> {after}), so the attn_mask no '
                         'longer fits; token prompts cannot run with an attention mask')


@SITES.register_module()
class OpenCLIPBlockSite(ForwardSite):
    """Re-states ``ResidualAttentionBlock.forward`` (``ln_1``/``attention``/``ls_1``, ``ln_2``/``mlp``/``ls_2``)
    with the block-level hooks. The attention still goes through the block's own ``attention()`` seam and so
    through the ``nn.MultiheadAttention`` site.

    The residual stream is (B, L, C) or, when the block's attention is sequence-first, (L, B, C); hooks always
    see (B, L, C). Cross-attention calls (``k_x``/``v_x``) are refused: visual towers never make them.
    """

    targets = ('open_clip.transformer.ResidualAttentionBlock',)
    hook_names = ('block_input', 'pre_mlp', 'block_output')

    def _hook(self, hook: str, x: Tensor) -> Tensor:
        if self.module.attn.batch_first:
            return getattr(self.strategy, hook)(self.info, x)
        return getattr(self.strategy, hook)(self.info, x.transpose(0, 1)).transpose(0, 1)  # (L, B, C) <-> (B, L, C)

    def forward(self, q_x: Tensor, k_x: Tensor | None = None, v_x: Tensor | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        b, info = self.module, self.info
        if k_x is not None or v_x is not None:
            raise NotImplementedError(f'{info.name}: promptkit block sites run self-attention blocks only')
        x = q_x
        if 'block_input' in self.active:
            n = x.shape[1 if b.attn.batch_first else 0]
            x = self._hook('block_input', x)
            _token_count_kept(info.name, n, x.shape[1 if b.attn.batch_first else 0], attn_mask)
        x = x + b.ls_1(b.attention(q_x=b.ln_1(x), attn_mask=attn_mask))
        if 'pre_mlp' in self.active:
            x = self._hook('pre_mlp', x)
        x = x + b.ls_2(b.mlp(b.ln_2(x)))
        if 'block_output' in self.active:
            x = self._hook('block_output', x)
        return x


@SITES.register_module()
class OpenCLIPCustomBlockSite(ForwardSite):
    """Re-states ``CustomResidualAttentionBlock.forward`` (``ln_1``/``attn``/``ln_attn``/``ls_1``, then
    ``ln_2``/``mlp``/``ls_2``) with the block-level hooks. These blocks are always batch-first.
    """

    targets = ('open_clip.transformer.CustomResidualAttentionBlock',)
    hook_names = ('block_input', 'pre_mlp', 'block_output')

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, s, info = self.module, self.strategy, self.info
        if 'block_input' in self.active:
            n = x.shape[1]
            x = s.block_input(info, x)
            _token_count_kept(info.name, n, x.shape[1], attn_mask)
        x = x + b.ls_1(b.ln_attn(b.attn(b.ln_1(x), attn_mask=attn_mask)))
        if 'pre_mlp' in self.active:
            x = s.pre_mlp(info, x)
        x = x + b.ls_2(b.mlp(b.ln_2(x)))
        if 'block_output' in self.active:
            x = s.block_output(info, x)
        return x
