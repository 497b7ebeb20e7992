"""Host for open_clip's visual ``VisionTransformer`` (``model.visual``; ``open_clip.transformer``, 3.3)."""
from __future__ import annotations

from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..registry import HOSTS
from .base import Host


@HOSTS.register_module()
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
    targets = ('open_clip.transformer.VisionTransformer',)
    roles = {'head_norm': 'ln_post'}

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        m = self.model
        depth = len(m.transformer.resblocks)
        for i, block in enumerate(m.transformer.resblocks):
            if hasattr(block, 'ln_1_kv'):
                raise TypeError(f'transformer.resblocks.{i} is a cross-attention block, which {self.name} does not '
                                'support')
            attn = block.attn
            info = SiteInfo(name=f'transformer.resblocks.{i}.attn', block=f'transformer.resblocks.{i}', layer=i,
                            num_layers=depth, dim=m.transformer.width, num_heads=attn.num_heads,
                            head_dim=attn.head_dim,
                            num_prefix_tokens=1, patch_size=tuple(m.patch_size), grid=tuple(m.grid_size))
            yield info, attn, block
