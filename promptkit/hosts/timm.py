"""Host for timm's ``VisionTransformer`` (``timm.models.vision_transformer``) and its subclasses."""
from __future__ import annotations

from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..registry import HOSTS
from .base import Host


@HOSTS.register_module()
class TimmViTHost(Host):
    """Sites of a timm ViT: ``blocks[i].attn`` (timm ``Attention``) and ``blocks[i]`` (timm ``Block``).

    Tokens are ``[prefix; patches]`` with ``num_prefix_tokens`` taken from the model (class token plus register
    tokens); patches are row-major over ``patch_embed.grid_size`` (the grid is left unknown with
    ``dynamic_img_size=True``). Token prompts go right after the prefix and leave before ``norm``/pooling, so
    every ``global_pool`` (token, avg, max, map) sees the host's tokens only. Role ``head_norm`` is ``fc_norm``
    when the model has one, else ``norm``.

    Refused at build time: blocks other than timm's ``Block`` (``ResPostBlock``, ``ParallelScalingBlock``, ...),
    attentions other than timm's ``Attention`` (``AttentionRope``, ``DiffAttention``, ...), and ``Attention`` built
    with ``gated=True`` or with a head width that makes its inner width differ from the residual width.

    Examples:
        >>> import timm
        >>> from promptkit.models import attach_prompts
        >>> vit = timm.create_model('vit_base_patch16_224', pretrained=False)
        >>> host, strategy, roles = attach_prompts(vit, dict(type='AdaptivePrompt', num_tokens=10))
    """

    name = 'timm VisionTransformer'
    targets = ('timm.models.vision_transformer.VisionTransformer',)

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        has_fc_norm = not isinstance(getattr(model, 'fc_norm', None), (nn.Identity, type(None)))
        self.roles = {'head_norm': 'fc_norm' if has_fc_norm else 'norm'}

    def _check(self, i: int, block: nn.Module) -> None:
        from timm.layers import Attention
        from timm.models.vision_transformer import Block

        if type(block) is not Block:
            raise TypeError(f'blocks.{i} is a {type(block).__name__}; {self.name} supports timm Block only')
        attn = block.attn
        if type(attn) is not Attention:
            raise TypeError(f'blocks.{i}.attn is a {type(attn).__name__}; {self.name} supports timm Attention only')
        if getattr(attn, 'gate', None) is not None:
            raise TypeError(f'blocks.{i}.attn is a gated timm Attention (gated=True), which promptkit does not run')
        if getattr(attn, 'attn_dim', self.model.embed_dim) != self.model.embed_dim:
            raise TypeError(f'blocks.{i}.attn has inner width {attn.attn_dim} != embed_dim {self.model.embed_dim} '
                            '(attn_head_dim set), which promptkit does not run')

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        m = self.model
        pe = m.patch_embed
        patch = tuple(getattr(pe, 'patch_size', (16, 16)))
        grid = getattr(pe, 'grid_size', None)
        grid = None if grid is None or getattr(m, 'dynamic_img_size', False) else tuple(grid)
        depth = len(m.blocks)
        for i, block in enumerate(m.blocks):
            self._check(i, block)
            attn = block.attn
            info = SiteInfo(name=f'blocks.{i}.attn', block=f'blocks.{i}', layer=i, num_layers=depth,
                            dim=m.embed_dim, num_heads=attn.num_heads, head_dim=attn.head_dim,
                            num_prefix_tokens=m.num_prefix_tokens, patch_size=patch, grid=grid)
            yield info, attn, block
