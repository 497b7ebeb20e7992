"""The small vocabulary shared by strategies, sites and hosts: site records, hook names, target selection and
the frame count of a forward in progress."""
from __future__ import annotations

import contextlib
import contextvars
import re
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

#: Hook points a strategy may implement. Sites call them; hosts say which they can honour.
HOOKS = ('extra_kv', 'attn_output', 'block_input', 'block_output', 'pre_mlp')
#: Hooks that need the block (not only the attention module) to be taken over.
BLOCK_HOOKS = ('block_input', 'block_output', 'pre_mlp')
#: Attention kinds and token layouts a ``SiteInfo`` may report.
KINDS = ('self', 'cross')
LAYOUTS = ('tokens', 'frames', 'spatial')

Layers = Union[str, int, Sequence[int]]


@dataclass(frozen=True)
class SiteInfo:
    """What a strategy needs to know about one attention site, for any host.

    Args:
        name: Module path of the attention module inside the host model, e.g. ``'blocks.3.attn'``.
        layer: Order index of the site: the block index for ViTs, the running index over all sites for UNets.
        num_layers: How many order indices the host has.
        dim: Width of this site's query input (the residual stream, C); sites of one host may differ.
        num_heads: Number of attention heads (H).
        head_dim: Width of one head (d).
        kind: ``'self'`` or ``'cross'`` attention.
        layout: How tokens arrive: ``'tokens'`` (B, N, C); ``'frames'`` (B·T, N, C), one image per frame, with T
            known only at forward time (:func:`current_frames`); ``'spatial'`` (feature maps whose h×w arrive at
            forward time, as in UNets).
        block: Module path of the enclosing block; ``''`` where the host has no block site.
        num_prefix_tokens: Class / register tokens at the start of the sequence (0 for VideoMAE).
        grid: Static patch-token grid: (h, w) for images and for one frame of ``'frames'``, (t, h, w) for video;
            None when the host does not know it statically.
        patch_size: Spatial patch size (h, w), used by VPT-style initialisation.
        tubelet_size: Temporal patch size (1 for image models).
        context_dim: Width of the key/value input of a cross-attention site (None for self-attention).
    """

    name: str
    layer: int
    num_layers: int
    dim: int
    num_heads: int
    head_dim: int
    kind: str = 'self'
    layout: str = 'tokens'
    block: str = ''
    num_prefix_tokens: int = 0
    grid: tuple[int, ...] | None = None
    patch_size: tuple[int, int] = (16, 16)
    tubelet_size: int = 1
    context_dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'SiteInfo {self.name}: kind must be one of {KINDS}, got {self.kind!r}')
        if self.layout not in LAYOUTS:
            raise ValueError(f'SiteInfo {self.name}: layout must be one of {LAYOUTS}, got {self.layout!r}')


def resolve_layers(layers: Layers, num_layers: int) -> list[int]:
    """Turn a declarative layer choice into sorted order indices.

    Args:
        layers: ``'all'``; an int ``n`` for the last ``n`` (timm's ``feature_take_indices`` rule); or a list of
            indices, negative ones counting from the end.
        num_layers: How many order indices the host has.

    Raises:
        ValueError: When the choice is malformed or names an index outside the model.
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
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f'layers must list ints, got {layers!r}')
        if not -num_layers <= i < num_layers:
            raise ValueError(f'layer {i} is outside the model: it has {num_layers} blocks (0..{num_layers - 1})')
        out.append(i % num_layers)
    if not out:
        raise ValueError('layers is empty: name at least one block')
    return sorted(set(out))


def select_sites(sites: Sequence[SiteInfo], layers: Layers = 'all', kinds: Sequence[str] | str | None = None,
                 modules: str | None = None, owner: str = 'prompt') -> list[SiteInfo]:
    """The sites matching a layer choice, attention kinds and a module-path pattern, in host order.

    Args:
        sites: Every site the host found.
        layers: See :func:`resolve_layers`.
        kinds: ``'self'``, ``'cross'``, or both; None for every kind.
        modules: A regular expression ``re.fullmatch``-ed against ``SiteInfo.name`` (PEFT's rule for a string
            ``target_modules``); None for every site.
        owner: Named in errors.

    Raises:
        ValueError: The choice is malformed or matches no site; the message lists what exists.
    """
    if not sites:
        raise ValueError(f'{owner}: the host has no attention sites')
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if kinds is not None and (not kinds or any(k not in KINDS for k in kinds)):
        raise ValueError(f'{owner}: kinds must list entries of {KINDS}, got {kinds!r}')
    try:
        pattern = None if modules is None else re.compile(modules)
    except (re.error, TypeError) as e:
        raise ValueError(f'{owner}: modules={modules!r} is not a regular expression ({e})') from None
    chosen = set(resolve_layers(layers, sites[0].num_layers))
    out = [s for s in sites if s.layer in chosen and (kinds is None or s.kind in kinds)
           and (pattern is None or pattern.fullmatch(s.name))]
    if not out:
        names = [s.name for s in sites]
        shown = ', '.join(names[:6]) + (f', ... ({len(names)} in all)' if len(names) > 6 else '')
        raise ValueError(f'{owner}: layers={layers!r}, kinds={kinds!r}, modules={modules!r} matched no site. The host '
                         f'has layers 0..{sites[0].num_layers - 1}, kinds {sorted({s.kind for s in sites})} and '
                         f'sites {shown}')
    return out


_frames: contextvars.ContextVar[int | None] = contextvars.ContextVar('promptkit_frames', default=None)


@contextlib.contextmanager
def frames(num_frames: int) -> Iterator[None]:
    """Publish the frame count T of the forward in progress to ``'frames'`` sites (B·T images in one batch)."""
    token = _frames.set(int(num_frames))
    try:
        yield
    finally:
        _frames.reset(token)


def current_frames(site: SiteInfo | None = None) -> int:
    """The frame count T published by :func:`frames` for the forward in progress.

    Raises:
        RuntimeError: No ``'frames'`` host published one (the site is run outside its host's forward).
    """
    t = _frames.get()
    if t is None:
        where = f' at {site.name}' if site is not None else ''
        raise RuntimeError(f'no frame count is set{where}: a strategy that mixes frames needs the frame-tower '
                           'host (promptkit.FrameTower), which runs its forward inside promptkit.core.frames(T)')
    return t
