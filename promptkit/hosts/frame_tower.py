"""Host for :class:`promptkit.FrameTower`: delegates to the host of its inner image tower."""
from __future__ import annotations

import dataclasses
from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..registry import HOSTS
from .base import Host


@HOSTS.register_module()
class FrameTowerHost(Host):
    """Sites of a ``FrameTower``: those of its inner tower (timm ViT or open_clip visual tower), found by that
    tower's own host, renamed under ``tower.`` and marked with layout ``'frames'``.

    The attention and block modules (so the site classes and the supported hooks) are the inner host's; only the
    records change: ``name`` gains the ``tower.`` prefix (paths in the FrameTower) and ``layout`` becomes
    ``'frames'``: the residual stream is (B·T, N, C), frames of a clip contiguous, with T published by the
    FrameTower's forward (:func:`promptkit.core.current_frames`). ``grid`` stays the per-frame (h, w). Role
    ``head_norm`` is the inner tower's (``tower.ln_post`` or ``tower.norm`` / ``tower.fc_norm``), which is the
    norm the FrameTower applies to the frame-averaged class token.
    """

    name = 'promptkit FrameTower'
    targets = ('promptkit.models.frame_tower.FrameTower',)

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        from . import find_host
        self.inner = find_host(model.tower)
        self.name = f'promptkit FrameTower ({self.inner.name})'
        self.roles = {role: f'tower.{path}' for role, path in self.inner.roles.items()}

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        for info, attn, block in self.inner.records():
            yield dataclasses.replace(info, name=f'tower.{info.name}', layout='frames'), attn, block
