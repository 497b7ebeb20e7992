"""The small vocabulary shared by strategies, sites and hosts: site records, hook names, layer selection."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

#: Hook points a strategy may implement. Sites call them; hosts say which they can honour.
HOOKS = ('extra_kv', 'attn_output', 'block_input', 'block_output', 'pre_mlp')
#: Hooks that need the block (not only the attention module) to be taken over.
BLOCK_HOOKS = ('block_input', 'block_output', 'pre_mlp')

Layers = Union[str, int, Sequence[int]]


@dataclass(frozen=True)
class SiteInfo:
    """What a strategy needs to know about one attention site.

    Args:
        name: Module path of the attention module inside the host model, e.g. ``'blocks.3.attn'``.
        layer: Index of the block the site belongs to.
        num_layers: Number of blocks in the host model.
        dim: Width of the residual stream (C).
        num_heads: Number of attention heads (H).
        head_dim: Width of one head (d = C / H).
        kind: ``'self'`` or ``'cross'`` attention.
        layout: ``'tokens'`` (B, N, C) or ``'frames'`` ((B·T, N, C): an image tower run on every frame of a clip,
            T known only at forward time, from :func:`current_frames`).
        num_prefix_tokens: Class / register tokens at the start of the sequence (0 for VideoMAE).
        patch_size: Spatial patch size (h, w), used by VPT-style initialisation.
        tubelet_size: Temporal patch size (1 for image models).
        grid: Patch-token grid, (h, w) for images or (t, h, w) for video, when the host knows it statically.
    """

    name: str
    layer: int
    num_layers: int
    dim: int
    num_heads: int
    head_dim: int
    kind: str = 'self'
    layout: str = 'tokens'
    num_prefix_tokens: int = 0
    patch_size: tuple[int, int] = (16, 16)
    tubelet_size: int = 1
    grid: tuple[int, ...] | None = None


def resolve_layers(layers: Layers, num_layers: int) -> list[int]:
    """Turn a declarative layer choice into sorted block indices.

    Args:
        layers: ``'all'``; an int ``n`` for the last ``n`` blocks (timm's ``feature_take_indices`` rule); or a list
            of indices, negative ones counting from the end.
        num_layers: Depth of the host model.

    Raises:
        ValueError: When the choice is malformed or names a block outside the model.
    """
    if layers == 'all':
        return list(range(num_layers))
    if isinstance(layers, bool) or not isinstance(layers, (int, list, tuple)):
        raise ValueError(f"layers must be 'all', an int or a list of ints, got {layers!r}")
    if isinstance(layers, int):
        if not 0 < layers <= num_layers:
            raise ValueError(f'layers={layers} asks for the last {layers} blocks of a {num_layers}-block model; '
                             f'use 1..{num_layers}')
        return list(range(num_layers - layers, num_layers))
    out = []
    for i in layers:
        if not -num_layers <= i < num_layers:
            raise ValueError(f'layer {i} is outside the model: it has {num_layers} blocks (0..{num_layers - 1})')
        out.append(i % num_layers)
    if not out:
        raise ValueError('layers is empty: name at least one block')
    return sorted(set(out))


# The frame count of the forward in progress, per thread (DataParallel replicas run in threads).
_FRAMES = threading.local()


@contextlib.contextmanager
def frames(T: int) -> Iterator[None]:
    """Publish the number of frames T of the clips in the forward inside the block (hosts of layout ``'frames'``)."""
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f'frames(T) needs a positive int, got {T!r}')
    saved = getattr(_FRAMES, 'value', None)
    _FRAMES.value = T
    try:
        yield
    finally:
        _FRAMES.value = saved


def current_frames() -> int:
    """The frame count T published by :func:`frames` for the forward in progress.

    Raises:
        RuntimeError: No forward of a ``'frames'`` host is in progress.
    """
    T = getattr(_FRAMES, 'value', None)
    if T is None:
        raise RuntimeError("no frame count is set: sites of layout 'frames' run only inside the forward of a "
                           'promptkit.FrameTower (which sets it with promptkit.core.frames(T)); call the FrameTower, '
                           'not its inner tower')
    return T
