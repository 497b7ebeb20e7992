"""Loading a promptkit classifier checkpoint's host tensors into an open_clip visual tower, checked. (open_clip's
own checkpoints are read by ``open_clip.create_model(pretrained=<local file>)``.)"""
from __future__ import annotations

from mmengine.logging import print_log
from torch import Tensor, nn

from ..checkpoint import check_fit

__all__ = ['load_open_clip_tower']


def load_open_clip_tower(visual: nn.Module, state: dict[str, Tensor], path: str) -> None:
    """Fill ``visual`` with ``state`` (read from ``path``), every tensor present with its shape."""
    check_fit(path, 'the open_clip visual tower', visual.state_dict(), state)
    visual.load_state_dict(state)
    print_log(f'promptkit: loaded {len(state)} visual-tower tensors from {path}', logger='current')
