"""Visual Prompt Tuning baselines (Jia et al., ECCV'22): learnable tokens inserted into the residual stream."""
from __future__ import annotations

from typing import ClassVar

import math

import torch
from torch import Tensor, nn

from ..core import SiteInfo
from ..registry import PROMPTS
from .base import TokenPrompt


def vpt_uniform_(prompt: Tensor, patch_size: tuple[int, int]) -> Tensor:
    """VPT's initialisation U(±sqrt(6 / (3·p_h·p_w + C))), the "xavier-uniform-like" range of a patch projection
    with 3 colour channels, for prompts of width C = ``prompt.shape[-1]``."""
    ph, pw = patch_size
    bound = math.sqrt(6.0 / (3 * ph * pw + prompt.shape[-1]))
    return nn.init.uniform_(prompt, -bound, bound)


@PROMPTS.register_module()
class DeepPrompt(TokenPrompt):
    """VPT: ``num_tokens`` learnable tokens inserted after the host's prefix tokens (class/register tokens).

    Deep (the default): the first targeted block gets fresh prompts inserted and every later targeted block
    replaces the prompt slots with its own. Shallow (``deep=False``): only the first targeted block inserts
    prompts, which then flow through the network. Either way the prompt tokens are removed after the last block,
    so pooling (mean over patches or class token) sees exactly the host's tokens. Prompts are initialised
    U(±sqrt(6 / (3·p_h·p_w + C))) as in VPT, with dropout (one mask per sample) on the inserted tokens.

    Args:
        num_tokens: Prompt tokens per layer.
        layers: Blocks that receive prompts. Defaults to ``'all'``.
        deep: Fresh prompts at every targeted block, or at the first only. Defaults to True.
        dropout: Dropout on inserted prompts. Defaults to 0.1.
        **kwargs: ``kinds`` / ``modules`` targeting, see :class:`~promptkit.strategies.PromptStrategy`.
    """

    #: The smallest config, for the contract tests and examples.
    example: ClassVar[dict] = dict(num_tokens=3)

    def __init__(self, num_tokens: int, layers='all', deep: bool = True, dropout: float = 0.1, **kwargs) -> None:
        super().__init__(num_tokens, dropout=dropout, layers=layers, **kwargs)
        self.deep = deep

    def build(self, sites: list[SiteInfo]) -> None:
        used = sites if self.deep else sites[:1]
        self.prompt = nn.ParameterList(vpt_uniform_(nn.Parameter(torch.empty(self.num_tokens, s.dim)), s.patch_size)
                                       for s in used)

    def inserts_at(self, site: SiteInfo) -> bool:
        return site.name in self._index and (self.deep or self.index(site) == 0)

    def prompts(self, site: SiteInfo, patches: Tensor) -> Tensor:
        return self.learned(self.prompt[self.index(site)], patches)

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, layers={self.targeted}, deep={self.deep}'


@PROMPTS.register_module()
class ShallowPrompt(DeepPrompt):
    """VPT-shallow: prompts inserted once, at the first targeted block (``DeepPrompt(deep=False)``)."""

    def __init__(self, num_tokens: int, layers='all', dropout: float = 0.1, **kwargs) -> None:
        super().__init__(num_tokens, layers=layers, deep=False, dropout=dropout, **kwargs)
