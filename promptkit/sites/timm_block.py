"""Site for timm's ViT ``Block`` (``timm.models.vision_transformer.Block``) with the block-level hooks."""
from __future__ import annotations

from torch import Tensor

from ..registry import SITES
from .base import ForwardSite


@SITES.register_module()
class TimmBlockSite(ForwardSite):
    """Re-states timm's pre-LN ``Block.forward`` (``norm1``/``attn``/``ls1``/``drop_path1``, then
    ``norm2``/``mlp``/``ls2``/``drop_path2``) so the strategy can act on the residual stream before attention
    (``block_input``), before the MLP sub-layer (``pre_mlp``) and after the block (``block_output``). The
    attention call still goes through its own site.
    """

    targets = ('timm.models.vision_transformer.Block',)
    hook_names = ('block_input', 'pre_mlp', 'block_output')

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        b, s, info = self.module, self.strategy, self.info
        if 'block_input' in self.active:
            n = x.shape[1]
            x = s.block_input(info, x)
            if attn_mask is not None and x.shape[1] != n:
                raise ValueError(f'{info.name}: the prompt changed the token count ({n} -> {x.shape[1]}), so the '
                                 "host's attn_mask no longer fits; token prompts cannot run with an attention mask")
        x = x + b.drop_path1(b.ls1(b.attn(b.norm1(x), attn_mask=attn_mask, is_causal=is_causal)))
        if 'pre_mlp' in self.active:
            x = s.pre_mlp(info, x)
        x = x + b.drop_path2(b.ls2(b.mlp(b.norm2(x))))
        if 'block_output' in self.active:
            x = s.block_output(info, x)
        return x
