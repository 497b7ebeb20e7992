"""Host for mmaction2's VideoMAE ``VisionTransformer`` (``mmaction/models/backbones/vit_mae.py``)."""
from __future__ import annotations

from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..registry import HOSTS
from .base import Host


@HOSTS.register_module()
class MMActionViTHost(Host):
    """Sites of mmaction2's VideoMAE ViT: ``blocks[i].attn`` (fused qkv, q/v biases) and ``blocks[i]``.

    Tokens are patch tubelets in (t, h, w) order with no class token; the backbone mean-pools all tokens and
    applies ``fc_norm`` (role ``head_norm``). The token grid (t, h, w) is the one the model was built for:
    ``grid_size`` (h, w) and t = position-embedding length / (h·w) = ``num_frames // tubelet_size``. mmaction2
    interpolates the position embedding for other frame sizes, so strategies that need the grid check the token
    count at the forward.
    """

    name = 'mmaction2 VideoMAE VisionTransformer'
    targets = ('mmaction.models.backbones.vit_mae.VisionTransformer',)
    roles = {'head_norm': 'fc_norm'}

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        proj = self.model.patch_embed.projection  # Conv3d, kernel (tubelet, ph, pw)
        tubelet, ph, pw = proj.kernel_size
        depth = len(self.model.blocks)
        grid = self._grid()
        for i, block in enumerate(self.model.blocks):
            attn = block.attn
            H = attn.num_heads
            info = SiteInfo(name=f'blocks.{i}.attn', block=f'blocks.{i}', layer=i, num_layers=depth,
                            dim=attn.embed_dims, num_heads=H, head_dim=attn.embed_dims // H, num_prefix_tokens=0,
                            patch_size=(ph, pw), tubelet_size=tubelet, grid=grid)
            yield info, attn, block

    def _grid(self) -> tuple[int, int, int] | None:
        """(t, h, w) of the patch tokens at the built input size, or None when the model does not say."""
        m = self.model
        size, pos = getattr(m, 'grid_size', None), getattr(m, 'pos_embed', None)
        if size is None or pos is None:
            return None
        gh, gw = size
        n = pos.shape[-2]  # (1, t·h·w, C)
        return (n // (gh * gw), gh, gw) if n % (gh * gw) == 0 else None
