"""Visual Prompt Tuning baselines (Jia et al., ECCV'22): learnable tokens inserted into the residual stream."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core import Layers, SiteInfo
from ..registry import PROMPTS
from .base import PromptStrategy


@PROMPTS.register_module()
class DeepPrompt(PromptStrategy):
    """VPT: ``num_tokens`` learnable tokens inserted after the host's prefix tokens (class/register tokens).

    Deep (the default): the first targeted block gets fresh prompts inserted and every later targeted block
    replaces the prompt slots with its own. Shallow (``deep=False``): only the first targeted block inserts
    prompts, which then flow through the network. Either way the prompt tokens are removed after the last block,
    so pooling (mean over patches or class token) sees exactly the host's tokens. Prompts are initialised
    U(±sqrt(6 / (3·p_h·p_w + C))) as in VPT, with dropout on the inserted tokens.

    Args:
        num_tokens: Prompt tokens per layer.
        layers: Blocks that receive prompts. Defaults to ``'all'``.
        deep: Fresh prompts at every targeted block, or at the first only. Defaults to True.
        dropout: Dropout on inserted prompts. Defaults to 0.1.
    """

    hooks = ('block_input', 'block_output')

    def __init__(self, num_tokens: int, layers: Layers = 'all', deep: bool = True, dropout: float = 0.1) -> None:
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'{type(self).__name__}: num_tokens must be a positive int, got {num_tokens!r}')
        super().__init__(layers)
        self.num_tokens, self.deep = num_tokens, deep
        self.dropout = nn.Dropout(dropout)

    def build(self, sites: list[SiteInfo]) -> None:
        C = sites[0].dim
        n = len(sites) if self.deep else 1
        self.prompt = nn.Parameter(torch.empty(n, self.num_tokens, C))
        ph, pw = sites[0].patch_size
        bound = math.sqrt(6.0 / (3 * ph * pw + C))
        nn.init.uniform_(self.prompt, -bound, bound)

    def uses(self, hook: str, site: SiteInfo) -> bool:
        if hook == 'block_output':  # remove the prompts after the model's last block
            return site.layer == site.num_layers - 1
        if hook == 'block_input':
            return site.layer in (self.targeted if self.deep else self.targeted[:1])
        return False

    def block_input(self, site: SiteInfo, x: Tensor) -> Tensor:
        i, n0, T = self.index(site), site.num_prefix_tokens, self.num_tokens
        p = self.dropout(self.prompt[i]).to(x.dtype).expand(x.shape[0], -1, -1)  # (B, T, C)
        rest = x[:, n0:] if i == 0 else x[:, n0 + T:]  # insert at the first targeted block, then replace
        return torch.cat([x[:, :n0], p, rest], dim=1)

    def block_output(self, site: SiteInfo, x: Tensor) -> Tensor:
        n0 = site.num_prefix_tokens
        return torch.cat([x[:, :n0], x[:, n0 + self.num_tokens:]], dim=1)

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, layers={self.targeted}, deep={self.deep}'


@PROMPTS.register_module()
class ShallowPrompt(DeepPrompt):
    """VPT-shallow: prompts inserted once, at the first targeted block (``DeepPrompt(deep=False)``)."""

    def __init__(self, num_tokens: int, layers: Layers = 'all', dropout: float = 0.1) -> None:
        super().__init__(num_tokens, layers=layers, deep=False, dropout=dropout)
