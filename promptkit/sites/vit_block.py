"""Site for mmaction2's VideoMAE ``Block``: a pre-LN transformer block with the block-level hooks."""
from __future__ import annotations

from torch import Tensor

from ..registry import SITES
from .base import ForwardSite


@SITES.register_module()
class VideoMAEBlockSite(ForwardSite):
    """Re-states ``vit_mae.Block.forward`` (pre-LN, optional layer scale ``gamma_1/2``, drop path) so the
    strategy can act on the residual stream before attention (``block_input``), before the MLP sub-layer
    (``pre_mlp``) and after the block (``block_output``). The attention call still goes through its own site.
    """

    targets = ('mmaction.models.backbones.vit_mae.Block',)
    hook_names = ('block_input', 'pre_mlp', 'block_output')

    def forward(self, x: Tensor) -> Tensor:
        b, s, info = self.module, self.strategy, self.info
        if 'block_input' in self.active:
            x = s.block_input(info, x)
        a = b.attn(b.norm1(x))
        x = x + b.drop_path(b.gamma_1 * a if hasattr(b, 'gamma_1') else a)
        if 'pre_mlp' in self.active:
            x = s.pre_mlp(info, x)
        m = b.mlp(b.norm2(x))
        x = x + b.drop_path(b.gamma_2 * m if hasattr(b, 'gamma_2') else m)
        if 'block_output' in self.active:
            x = s.block_output(info, x)
        return x
