"""Host for :class:`promptkit.FrameTower`: delegates to the host of its inner image tower."""
from __future__ import annotations

import dataclasses
import sys
from typing import Iterator

from torch import nn

from ..core import SiteInfo
from .base import Host


class FrameTowerHost(Host):
    """Sites of a ``FrameTower``: those of its inner tower (timm ViT or open_clip visual tower), found by that
    tower's own host, renamed under ``tower.`` and marked with layout ``'frames'``.

    The attention and block modules, the site classes and the supported hooks are the inner host's; only the
    records change: ``name`` gains the ``tower.`` prefix (paths in the FrameTower) and ``layout`` becomes
    ``'frames'``: the residual stream is (B·T, N, C), frames of a clip contiguous, with T published by the
    FrameTower's forward (:func:`promptkit.core.current_frames`). ``grid`` stays the per-frame (h, w). Role
    ``head_norm`` is the inner tower's (``tower.ln_post`` or ``tower.norm`` / ``tower.fc_norm``), which is the
    norm the FrameTower applies to the frame-averaged class token.
    """

    name = 'promptkit FrameTower'

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        from . import find_host
        self.inner = find_host(model.tower)
        self.name = f'promptkit FrameTower ({self.inner.name})'
        self.attention_site, self.block_site = self.inner.attention_site, self.inner.block_site
        self.supported_hooks = self.inner.supported_hooks
        self.roles = {role: f'tower.{path}' for role, path in self.inner.roles.items()}

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        ft = sys.modules.get('promptkit.models.frame_tower')  # a FrameTower cannot exist before this import
        return ft is not None and isinstance(model, ft.FrameTower)

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        for info, attn, block in self.inner.records():
            yield dataclasses.replace(info, name=f'tower.{info.name}', layout='frames'), attn, block
