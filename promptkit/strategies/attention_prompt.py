"""Attention Prompt Tuning (Bandara & Patel, FG'24): learnable prompts appended to every head's keys and values."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core import SiteInfo
from ..registry import PROMPTS
from .base import PromptStrategy


@PROMPTS.register_module()
class AttentionPrompt(PromptStrategy):
    """Attention Prompt Tuning (APT) for video transformers, as in the official code (METHODS.md §1.3).

    Per prompted layer, ``num_tokens`` key prompts and value prompts of head width d live directly in the
    per-head key/value space: they skip the frozen qkv projection, are shared by all heads and samples, and are
    appended after the data keys/values inside one softmax. The sequence length does not change.

    Each layer's prompts go through dropout (independent masks for K and V, shared over batch and heads) and then,
    with ``reparam``, are scaled per token by ``torch.maximum(s, 1)`` with ``s`` initialised to 1. ``maximum``
    (not ``clamp_min``) reproduces the official gradient: half at the tie s = 1, none below it.

    Args:
        num_tokens: Prompts per layer for keys and for values (T).
        start: First prompted block. Defaults to 0.
        end: Last prompted block, inclusive; ``None`` for the last block. Defaults to None.
        dropout: Prompt dropout, before reparameterisation. Defaults to 0.1.
        reparam: Learn one scale per prompt token for K and for V. Defaults to True.
        train_head_norm: Also train the host's pooled-feature norm (``fc_norm``). The official code trains it
            because its name contains ``"head"``; kept as the default. Defaults to True.

    Examples:
        >>> backbone = dict(type='promptkit.PromptedBackbone',
        ...                 backbone=dict(type='VisionTransformer', embed_dims=768, depth=12, num_heads=12),
        ...                 prompt=dict(type='AttentionPrompt', num_tokens=2))
    """

    hooks = ('extra_kv',)

    def __init__(self, num_tokens: int, start: int = 0, end: int | None = None, dropout: float = 0.1,
                 reparam: bool = True, train_head_norm: bool = True) -> None:
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'AttentionPrompt: num_tokens must be a positive int, got {num_tokens!r}')
        if start < 0 or (end is not None and end < start):
            raise ValueError(f'AttentionPrompt: need 0 <= start <= end, got start={start}, end={end}')
        super().__init__(layers='all')
        self.num_tokens, self.start, self.end = num_tokens, start, end
        self.reparam = reparam
        self.dropout = nn.Dropout(dropout)
        self.host_roles = ('head_norm',) if train_head_norm else ()
        self._cache_key, self._cache = None, []

    def setup(self, sites: list[SiteInfo]) -> None:
        depth = sites[0].num_layers
        end = depth - 1 if self.end is None else self.end
        if end >= depth:
            raise ValueError(f'AttentionPrompt: layer range start={self.start}, end={end} is outside the model: '
                             f'it has {depth} blocks, so end must be at most {depth - 1}')
        self.layers = list(range(self.start, end + 1))
        super().setup(sites)

    def build(self, sites: list[SiteInfo]) -> None:
        d = sites[0].head_dim
        if any(s.head_dim != d for s in sites):
            raise ValueError('AttentionPrompt needs the same head width in every prompted layer')
        L, T = len(sites), self.num_tokens
        self.prompt_k = nn.Parameter(torch.empty(L, T, d))
        self.prompt_v = nn.Parameter(torch.empty(L, T, d))
        # One scale per prompt token, for K (index 0) and V (index 1), as (L, 2, T) in the official code.
        self.prompt_scale = nn.Parameter(torch.ones(L, 2, T)) if self.reparam else None
        # VPT's "xavier-uniform-like" range with 3 colour channels and the patch area.
        ph, pw = sites[0].patch_size
        bound = math.sqrt(6.0 / (3 * ph * pw + d))
        nn.init.uniform_(self.prompt_k, -bound, bound)
        nn.init.uniform_(self.prompt_v, -bound, bound)

    def extra_kv(self, site: SiteInfo, q: Tensor) -> tuple[Tensor, Tensor]:
        i = self.index(site)
        if self.training or torch.is_grad_enabled():
            return self._prompts(i)
        # Inference: the reparameterised prompts do not depend on the input, so compute them (scales, cast to
        # the activations' dtype) once for all layers and reuse them until a parameter changes in place.
        key = (q.dtype, q.device, *(p._version for p in self.parameters()))
        if self._cache_key != key:
            self._cache = [tuple(t.to(q.dtype) for t in self._prompts(j)) for j in range(len(self.sites))]
            self._cache_key = key
        return self._cache[i]

    def _prompts(self, i: int) -> tuple[Tensor, Tensor]:
        """Layer ``i``'s key and value prompts, (T, d) each: dropout, then ``max(s, 1)`` scaling."""
        pk, pv = self.dropout(self.prompt_k[i]), self.dropout(self.prompt_v[i])
        if self.prompt_scale is not None:
            s = self.prompt_scale[i]
            s = torch.maximum(s, torch.ones_like(s))  # (2, T)
            pk, pv = pk * s[0, :, None], pv * s[1, :, None]
        return pk, pv

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, layers={self.targeted}, reparam={self.reparam}'
