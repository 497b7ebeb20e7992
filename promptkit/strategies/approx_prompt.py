"""Approximated Prompt Tuning (Wu et al., ICCV'23): prompt attention approximated by an independent ReLU branch."""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Layers, SiteInfo
from ..registry import PROMPTS
from .base import PromptStrategy, check_int, check_rate


@PROMPTS.register_module()
class ApproxPrompt(PromptStrategy):
    """Approximated Prompt Tuning (APT for vision-language models), as in the official code (docs/methods.md §2).

    Instead of appending prompts to the keys and values of the joint softmax, every targeted attention gets an
    additive branch that lets its input tokens read from ``num_tokens`` prompts on their own (the paper's
    "independent information diffusion"), at O(N·M·C) cost rather than a longer N² attention. Per targeted layer,
    with r the attention input (the LayerNorm'ed block input, (B, N, C)) and x the attention output after the
    frozen output projection:

    1. P' = P + (P·W1)·W2, a rank-k reparameterisation of the prompts P (M, C) used as keys;
    2. A = Dropout(ReLU(r·P'ᵀ)), (B, N, M): no 1/√d scaling, no heads, no softmax;
    3. E = A·P, (B, N, C): the un-reparameterised prompts are the values;
    4. w = maxₘ A, (B, N, 1), detached (no gradient flows through it);
    5. x ← (x + E ⊙ w) · exp(s), with a scalar gate s.

    The branch sits inside the attention after the output projection and before its dropout (ViLT's placement),
    and sees every token (no attention mask). Through the ``attn_output`` hook, which returns a delta added to x,
    step 5 is ``x·(exp(s) − 1) + E·w·exp(s)``; with a frozen gate it is ``E·w``.

    Initialisation: P ~ N(0, 0.02), W1 ~ N(0, 1), W2 = 0 (so P' = P at the start), s = 0 (so exp(s) = 1). The
    branch itself is not zero at initialisation; P = 0 (with s = 0) gives exactly the host's output.

    Trainable parameters per targeted layer: M·C + 2·k·C, plus 1 for the gate when ``train_scale``. ViT-B
    (C = 768, 12 layers) with M = 200, k = 4: 12 × (153,600 + 6,144 + 1) = 1,916,940, the "1.92M" of the
    official README for ViLT.

    Defaults follow the README's parameter counts: M = 200 in every targeted layer (the METER code uses 200;
    the released ViLT code uses 50, which gives 0.53M instead of the README's 1.92M). ViLT trains the gate; METER's
    trainable-name filter leaves it frozen at exp(0) = 1, which ``train_scale=False`` reproduces.

    Args:
        num_tokens: Prompts per targeted layer (M). Defaults to 200.
        rank: Rank k of the prompt reparameterisation. Defaults to 4.
        layers: Blocks that get the branch: ``'all'`` (ViLT: every block), the last n, or a list of indices.
            Defaults to ``'all'``.
        dropout: Dropout on the activations A (the official module reuses the attention dropout rate, 0 in both
            official setups). Defaults to 0.0.
        train_scale: Learn the gate s (ViLT) or keep it at 0, untrained and absent from the parameters (METER).
            Defaults to True.
        **kwargs: ``kinds`` / ``modules`` targeting, see :class:`~promptkit.strategies.PromptStrategy`.

    Examples:
        >>> backbone = dict(type='promptkit.PromptedBackbone',
        ...                 backbone=dict(type='VisionTransformer', embed_dims=768, depth=12, num_heads=12),
        ...                 prompt=dict(type='ApproxPrompt', num_tokens=200, rank=4))
        >>> import timm
        >>> from promptkit.models import attach_prompts
        >>> vit = timm.create_model('vit_base_patch16_224', pretrained=False)
        >>> host, apt, _ = attach_prompts(vit, dict(type='ApproxPrompt'))
        >>> sum(p.numel() for p in apt.parameters())
        1916940
    """

    #: The smallest config, for the contract tests and examples.
    example: ClassVar[dict] = dict(num_tokens=8, rank=2)
    hooks = ('attn_output',)

    def __init__(self, num_tokens: int = 200, rank: int = 4, layers: Layers = 'all', dropout: float = 0.0,
                 train_scale: bool = True, **kwargs) -> None:
        name = type(self).__name__
        super().__init__(layers, **kwargs)
        self.num_tokens, self.rank = check_int(name, 'num_tokens', num_tokens), check_int(name, 'rank', rank)
        self.train_scale = train_scale
        self.dropout = nn.Dropout(check_rate(name, 'dropout', dropout))

    def build(self, sites: list[SiteInfo]) -> None:
        M, k = self.num_tokens, self.rank
        self.prompt = nn.ParameterList(nn.Parameter(torch.empty(M, s.dim)) for s in sites)  # P, also the values
        self.prompt_down = nn.ParameterList(nn.Parameter(torch.empty(s.dim, k)) for s in sites)  # W1
        self.prompt_up = nn.ParameterList(nn.Parameter(torch.zeros(k, s.dim)) for s in sites)  # W2: P' = P at init
        # s, one scalar gate per site: exp(0) = 1.
        self.prompt_scale = nn.ParameterList(nn.Parameter(torch.zeros(())) for _ in sites) if self.train_scale \
            else None
        for p, down in zip(self.prompt, self.prompt_down):
            nn.init.normal_(p, std=0.02)
            nn.init.normal_(down, std=1.0)

    def noop_(self) -> 'ApproxPrompt':
        """P = 0 and s = 0: the branch adds exactly nothing."""
        with torch.no_grad():
            for p in [*self.prompt, *(self.prompt_scale or ())]:
                p.zero_()
        return self

    def keys(self, i: int) -> Tensor:
        """Site ``i``'s reparameterised prompts P' = P + (P·W1)·W2, (M, C)."""
        p = self.prompt[i]
        return p + (p @ self.prompt_down[i]) @ self.prompt_up[i]

    def attn_output(self, site: SiteInfo, x: Tensor, out: Tensor) -> Tensor:
        i = self.index(site)
        p = self.prompt[i].to(x.dtype)  # (M, C)
        a = self.dropout(F.relu(F.linear(x, self.keys(i).to(x.dtype))))  # (B, N, M)
        e = a @ p  # (B, N, C)
        w = a.amax(dim=-1, keepdim=True).detach()  # (B, N, 1)
        delta = e * w
        if self.prompt_scale is None:
            return delta
        s = self.prompt_scale[i].to(out.dtype)
        return out * torch.expm1(s) + delta * s.exp()  # = (out + E·w)·exp(s) − out

    def extra_repr(self) -> str:
        return (f'num_tokens={self.num_tokens}, rank={self.rank}, layers={self.targeted or self.layers}, '
                f'train_scale={self.train_scale}')
