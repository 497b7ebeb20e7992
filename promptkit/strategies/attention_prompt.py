"""Attention Prompt Tuning (Bandara & Patel, FG'24): learnable prompts appended to every head's keys and values."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core import Layers, SiteInfo
from ..registry import PROMPTS
from .base import PromptStrategy, check_int, check_rate
from .deep_prompt import vpt_uniform_


@PROMPTS.register_module()
class AttentionPrompt(PromptStrategy):
    """Attention Prompt Tuning (APT) for video transformers, as in the official code (docs/methods.md).

    Per prompted layer, ``num_tokens`` key prompts and value prompts of head width d live directly in the
    per-head key/value space: they skip the frozen qkv projection, are shared by all heads and samples, and are
    appended after the data keys/values inside one softmax. The sequence length does not change.

    Each layer's prompts go through dropout (independent masks for K and V, shared over batch and heads) and then,
    with ``reparam``, are scaled per token by ``torch.maximum(s, 1)`` with ``s`` initialised to 1. ``maximum``
    (not ``clamp_min``) reproduces the official gradient: half at the tie s = 1, none below it.

    Parameters are per site (``prompt_k.i``, ``prompt_v.i``: (T, d) with that site's head width d;
    ``prompt_scale.i``: (2, T)), so K/V prompts also fit hosts whose sites differ in width, self- and
    cross-attention alike (UNets).

    Args:
        num_tokens: Prompts per layer for keys and for values (T).
        layers: Prompted sites: ``'all'``, the last ``n``, or a list of indices. Defaults to ``'all'``.
        start: First prompted block, the official code's option; ``start``/``end`` map to ``layers``
            (``layers=list(range(start, end + 1))``) and cannot be combined with it. Defaults to None.
        end: Last prompted block, inclusive; ``None`` for the last block. Defaults to None.
        dropout: Prompt dropout, before reparameterisation. Defaults to 0.1.
        reparam: Learn one scale per prompt token for K and for V. Defaults to True.
        train_head_norm: Also train the host's pooled-feature norm (``fc_norm``). The official code trains it
            because its name contains ``"head"``; kept as the default. Defaults to True.
        **kwargs: ``kinds`` / ``modules`` targeting, see :class:`~promptkit.strategies.PromptStrategy`.

    Examples:
        >>> backbone = dict(type='promptkit.PromptedBackbone',
        ...                 backbone=dict(type='VisionTransformer', embed_dims=768, depth=12, num_heads=12),
        ...                 prompt=dict(type='AttentionPrompt', num_tokens=2))
    """

    #: The smallest config, for the contract tests and examples.
    example: ClassVar[dict] = dict(num_tokens=3)
    hooks = ('extra_kv',)

    def __init__(self, num_tokens: int, layers: Layers = 'all', start: int | None = None, end: int | None = None,
                 dropout: float = 0.1, reparam: bool = True, train_head_norm: bool = True, **kwargs) -> None:
        name = type(self).__name__
        check_int(name, 'num_tokens', num_tokens)
        if start is not None or end is not None:
            if layers != 'all':
                raise ValueError(f'{name}: give layers= or start=/end=, not both')
            check_int(name, 'start', 0 if start is None else start, minimum=0)
            if end is not None and end < (start or 0):
                raise ValueError(f'{name}: need 0 <= start <= end, got start={start}, end={end}')
        super().__init__(layers=layers, **kwargs)
        self.num_tokens, self.start, self.end = num_tokens, start, end
        self.reparam = reparam
        self.dropout = nn.Dropout(check_rate(name, 'dropout', dropout))
        self.host_roles = ('head_norm',) if train_head_norm else ()

    def setup(self, sites: list[SiteInfo]) -> None:
        if self.start is not None or self.end is not None:
            depth = sites[0].num_layers
            end = depth - 1 if self.end is None else self.end
            if end >= depth:
                raise ValueError(f'AttentionPrompt: layer range start={self.start or 0}, end={end} is outside the '
                                 f'model: it has {depth} blocks, so end must be at most {depth - 1}')
            self.layers = list(range(self.start or 0, end + 1))
        super().setup(sites)

    def build(self, sites: list[SiteInfo]) -> None:
        T = self.num_tokens
        self.prompt_k = nn.ParameterList(nn.Parameter(torch.empty(T, s.head_dim)) for s in sites)
        self.prompt_v = nn.ParameterList(nn.Parameter(torch.empty(T, s.head_dim)) for s in sites)
        # One scale per prompt token, for K (row 0) and V (row 1), as the official code's (L, 2, T).
        self.prompt_scale = nn.ParameterList(nn.Parameter(torch.ones(2, T)) for _ in sites) if self.reparam \
            else None
        for s, pk, pv in zip(sites, self.prompt_k, self.prompt_v):
            vpt_uniform_(pk, s.patch_size)  # VPT's range with 3 colour channels and the patch area
            vpt_uniform_(pv, s.patch_size)

    def extra_kv(self, site: SiteInfo, q: Tensor) -> tuple[Tensor, Tensor]:
        """Site ``site``'s key and value prompts, (T, d) each: dropout, then ``max(s, 1)`` scaling. They do not
        depend on the input; computing them costs O(T·d) per layer, so they are not cached (a cache would miss
        in-place updates made through ``.data``, as EMA hooks make them)."""
        i = self.index(site)
        pk, pv = self.dropout(self.prompt_k[i]), self.dropout(self.prompt_v[i])
        if self.prompt_scale is not None:
            s = self.prompt_scale[i]
            s = torch.maximum(s, torch.ones_like(s))  # (2, T)
            pk, pv = pk * s[0, :, None], pv * s[1, :, None]
        return pk.to(q.dtype), pv.to(q.dtype)

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, layers={self.targeted}, reparam={self.reparam}'
