"""Host for open_clip's visual ``VisionTransformer`` (``model.visual``; ``open_clip.transformer``, 3.3)."""
from __future__ import annotations

import sys
from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..sites import MultiheadAttentionSite, OpenCLIPAttentionSite, OpenCLIPBlockSite, OpenCLIPCustomBlockSite, Site
from .base import Host


class OpenCLIPVisualHost(Host):
    """Sites of an open_clip ViT visual tower: ``transformer.resblocks[i].attn`` and ``transformer.resblocks[i]``.

    The site classes follow the block class, which open_clip picks with ``block_type``:

    - ``'default'``: ``ResidualAttentionBlock`` with ``nn.MultiheadAttention`` (batch-first in open_clip 3.3;
      sequence-first blocks also work) -> :class:`MultiheadAttentionSite`, :class:`OpenCLIPBlockSite`.
    - ``'custom'``: ``CustomResidualAttentionBlock`` with open_clip's ``Attention`` (QK norm, head scale, inner and
      post-attention norms, MLP norm) -> :class:`OpenCLIPAttentionSite`, :class:`OpenCLIPCustomBlockSite`.
      Scaled cosine attention is refused (see the site).

    Tokens are ``[class; patches]`` (one prefix token), patches row-major over ``visual.grid_size``. Token prompts
    leave before ``ln_post`` and pooling, so ``pool_type`` ``'tok'``/``'avg'``, the attentional pooler and
    ``output_tokens`` see the host's tokens only. Role ``head_norm`` is ``ln_post``. Pass the tower
    (``clip.visual``), not the whole CLIP model.

    Examples:
        >>> import open_clip
        >>> from promptkit.models import attach_prompts
        >>> clip = open_clip.create_model('ViT-B-16')
        >>> host, strategy, roles = attach_prompts(clip.visual, dict(type='DeepPrompt', num_tokens=10))
    """

    name = 'open_clip VisionTransformer (visual tower)'
    roles = {'head_norm': 'ln_post'}
    attention_site = MultiheadAttentionSite
    block_site = OpenCLIPBlockSite

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.attention_site, self.block_site = self._site_classes()

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        oc = sys.modules.get('open_clip.transformer')  # an open_clip tower cannot exist before this import
        return oc is not None and isinstance(model, oc.VisionTransformer)

    def _site_classes(self) -> tuple[type[Site], type[Site]]:
        """Pick the sites from the block and attention classes; every block must be of the same kind."""
        from open_clip.transformer import Attention, CustomResidualAttentionBlock, ResidualAttentionBlock

        kinds = {  # block class -> (attention class, attention site, block site)
            ResidualAttentionBlock: (nn.MultiheadAttention, MultiheadAttentionSite, OpenCLIPBlockSite),
            CustomResidualAttentionBlock: (Attention, OpenCLIPAttentionSite, OpenCLIPCustomBlockSite),
        }
        blocks = self.model.transformer.resblocks
        found = {type(b) for b in blocks}
        if len(found) != 1 or next(iter(found)) not in kinds:
            raise TypeError(f'{self.name} supports towers made only of ResidualAttentionBlock or only of '
                            f'CustomResidualAttentionBlock; found {sorted(c.__name__ for c in found)}')
        attn_cls, attn_site, block_site = kinds[type(blocks[0])]
        for i, b in enumerate(blocks):
            if type(b.attn) is not attn_cls:
                raise TypeError(f'transformer.resblocks.{i}.attn is a {type(b.attn).__name__}, expected '
                                f'{attn_cls.__name__} in a {type(b).__name__}')
            if hasattr(b, 'ln_1_kv'):
                raise TypeError(f'transformer.resblocks.{i} is a cross-attention block, which {self.name} does not '
                                'support')
        return attn_site, block_site

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        m = self.model
        depth = len(m.transformer.resblocks)
        for i, block in enumerate(m.transformer.resblocks):
            attn = block.attn
            info = SiteInfo(name=f'transformer.resblocks.{i}.attn', layer=i, num_layers=depth,
                            dim=m.transformer.width, num_heads=attn.num_heads, head_dim=attn.head_dim, kind='self',
                            num_prefix_tokens=1, patch_size=tuple(m.patch_size), grid=tuple(m.grid_size))
            yield info, attn, block
