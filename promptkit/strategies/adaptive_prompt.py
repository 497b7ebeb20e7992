"""VAPT, Visual Adaptive Prompt Tuning (Le et al., ICLR'26): prompts generated from the previous layer's patches."""
from __future__ import annotations

from typing import ClassVar


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Layers, SiteInfo
from ..registry import PROMPTS
from .base import TokenPrompt, check_int, check_rate
from .deep_prompt import vpt_uniform_


class PromptMLP(nn.Module):
    """VAPT's feature projector on prompt tokens: ``x + W2·Dropout(ReLU(W1·x))``, no biases.

    Args:
        dim: Token width (C).
        hidden_dim: Bottleneck width (r).
        dropout: Dropout after the activation. Defaults to 0.1.
        residual: Add the input back (the official code) or not (the paper's formula). Defaults to True.
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.1, residual: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=False)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, dim, bias=False)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc2(self.drop(self.act(self.fc1(x))))
        return x + y if self.residual else y


@PROMPTS.register_module()
class AdaptivePrompt(TokenPrompt):
    """VAPT (docs/methods.md §3): VPT-deep whose prompts, after the first layers, are functions of the patch tokens.

    Among the targeted blocks, the first ``static_layers`` take static learnable prompts exactly as VPT-deep
    (init U(±sqrt(6 / (3·p_h·p_w + C))), dropout ``dropout`` with one mask per sample). Every later targeted block replaces the prompt
    slots with ``num_tokens`` prompts computed from the patch tokens entering it (the previous block's output):

    1. a per-layer trainable LayerNorm over the patch tokens (token-wise, so it equals normalising
       ``[CLS; patches]`` and dropping CLS);
    2. reshape to the grid, (B, C, h, w), row-major;
    3. a K×K depth-wise convolution without bias whose single kernel is shared by all C channels
       (``share_kernel``; else one kernel per channel), init N(0, 1) -> (B, C, h', w');
    4. ``Dropout2d(conv_dropout)``, flatten to (B, C, h'·w');
    5. a per-layer token-wise projector Linear(h'·w' -> Np), weight and bias zero-initialised -> (B, Np, C);
    6. a feature projector :class:`PromptMLP` (hidden width r, shared by all layers when ``share_projector``).

    Because the token-wise projector starts at zero and the MLP has no biases, the adaptive prompts are exactly
    zero at initialisation. Prompts sit right after the host's prefix tokens and are removed after the model's
    last block, so pooling never sees them. ``host_eval`` asks the wrapper to keep the frozen host in eval mode
    while these modules train, as the official code does.

    Trainable parameters, for L targeted blocks, S = ``static_layers``, A = L − S adaptive blocks:
    S·Np·C + A·(2C + K²·c + Np·(h'w' + 1)) + 2·r·C·(1 or A), with c = 1 for a shared kernel, else C.
    ViT-B/16 at 224 with Np = 10, K = 2, r = 8: 55,608 (VPT-deep: 92,160).

    Args:
        num_tokens: Prompt tokens per layer (Np).
        layers: Blocks that receive prompts. Defaults to ``'all'``.
        static_layers: How many of the first targeted blocks use static prompts (the official ``VPT_DEPTH``).
            0 makes the first block's prompts adaptive as well. Defaults to 1.
        kernel_size: Convolution kernel size K. Defaults to 2.
        padding: Convolution zero padding. Defaults to 0.
        hidden_dim: Width r of the feature projector; None drops the projector. Defaults to 8.
        share_projector: One feature projector for all adaptive blocks, or one per block. Defaults to True.
        share_kernel: One kernel shared by all channels, or one per channel. Defaults to True.
        residual: Residual feature projector (the official code) or the paper's ``W2·σ(W1·x)``. Defaults to True.
        dropout: Dropout on static prompts. Defaults to 0.1.
        conv_dropout: ``Dropout2d`` rate after the convolution. Defaults to 0.1.
        mlp_dropout: Dropout inside the feature projector. Defaults to 0.1.
        norm_eps: Epsilon of the per-layer LayerNorms (PyTorch's default, as the official code). Defaults to 1e-5.
        **kwargs: ``kinds`` / ``modules`` targeting, see :class:`~promptkit.strategies.PromptStrategy`.

    Examples:
        >>> import timm
        >>> from promptkit.models import attach_prompts
        >>> vit = timm.create_model('vit_base_patch16_224', pretrained=False)
        >>> host, vapt, _ = attach_prompts(vit, dict(type='AdaptivePrompt', num_tokens=10, hidden_dim=8))
        >>> sum(p.numel() for p in vapt.parameters())
        55608
    """

    #: The smallest config, for the contract tests and examples.
    example: ClassVar[dict] = dict(num_tokens=3, hidden_dim=4)

    #: Wrappers keep the frozen host in eval mode (no host dropout / drop path) while this strategy trains.
    host_eval: bool = True

    def __init__(self, num_tokens: int, layers: Layers = 'all', static_layers: int = 1, kernel_size: int = 2,
                 padding: int = 0, hidden_dim: int | None = 8, share_projector: bool = True,
                 share_kernel: bool = True, residual: bool = True, dropout: float = 0.1, conv_dropout: float = 0.1,
                 mlp_dropout: float = 0.1, norm_eps: float = 1e-5, **kwargs) -> None:
        name = type(self).__name__
        check_int(name, 'static_layers', static_layers, minimum=0)
        check_int(name, 'kernel_size', kernel_size)
        check_int(name, 'padding', padding, minimum=0)
        if hidden_dim is not None:
            check_int(name, 'hidden_dim', hidden_dim)
        super().__init__(num_tokens, dropout=dropout, layers=layers, **kwargs)
        self.static_layers = static_layers
        self.kernel_size, self.padding, self.hidden_dim = kernel_size, padding, hidden_dim
        self.share_projector, self.share_kernel, self.residual = share_projector, share_kernel, residual
        self.mlp_dropout, self.norm_eps = check_rate(name, 'mlp_dropout', mlp_dropout), norm_eps
        self.conv_dropout = nn.Dropout2d(check_rate(name, 'conv_dropout', conv_dropout))

    def build(self, sites: list[SiteInfo]) -> None:
        name, Np, K = type(self).__name__, self.num_tokens, self.kernel_size
        if self.static_layers > len(sites):
            raise ValueError(f'{name}: static_layers={self.static_layers} exceeds the {len(sites)} targeted blocks')
        static, adaptive = sites[:self.static_layers], sites[self.static_layers:]
        self.prompt = nn.ParameterList(vpt_uniform_(nn.Parameter(torch.empty(Np, s.dim)), s.patch_size)
                                       for s in static)
        if not adaptive:
            return
        grids = []
        for s in adaptive:
            if s.grid is None or len(s.grid) != 2:
                raise ValueError(f'{name} needs a static 2-D patch grid from the host (image ViTs with a fixed input '
                                 f'size) at its adaptive blocks; {s.name} reports grid={s.grid}')
            h, w = (g + 2 * self.padding - K + 1 for g in s.grid)  # conv output grid (h', w')
            if h <= 0 or w <= 0:
                raise ValueError(f'{name}: kernel_size={K} with padding={self.padding} does not fit the {s.grid} '
                                 f'grid of {s.name}')
            grids.append(h * w)
        self.prompt_norm = nn.ModuleList(nn.LayerNorm(s.dim, eps=self.norm_eps) for s in adaptive)
        # One K×K kernel per adaptive block, shared by all channels ((1, 1, K, K)) or per channel ((C, 1, K, K)).
        self.prompt_kernel = nn.ParameterList(nn.Parameter(torch.randn(1 if self.share_kernel else s.dim, 1, K, K))
                                              for s in adaptive)
        self.token_proj = nn.ModuleList(nn.Linear(n, Np) for n in grids)
        for proj in self.token_proj:
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        if self.hidden_dim is None:
            self.feature_mlp = nn.ModuleList()
            return
        if self.share_projector and len({s.dim for s in adaptive}) > 1:
            raise ValueError(f'{name}: share_projector=True needs one width in every adaptive block, got '
                             f'{sorted({s.dim for s in adaptive})}; set share_projector=False')
        widths = [adaptive[0].dim] if self.share_projector else [s.dim for s in adaptive]
        self.feature_mlp = nn.ModuleList(PromptMLP(C, self.hidden_dim, self.mlp_dropout, self.residual)
                                         for C in widths)

    def unfit(self, site: SiteInfo) -> str | None:
        if site.grid is None or len(site.grid) != 2:
            return (f'VAPT needs a static 2-D patch grid (an image ViT with a fixed input size); the site reports '
                    f'layout {site.layout!r} and grid={site.grid}')
        return super().unfit(site)

    def generate(self, site: SiteInfo, patches: Tensor) -> Tensor:
        """Adaptive prompts for a targeted block from the patch tokens entering it.

        Args:
            site: A targeted site past the static ones.
            patches: Patch tokens, (B, h·w, C), row-major over ``site.grid``.

        Returns:
            Prompts, (B, Np, C).
        """
        j = self.index(site) - self.static_layers
        B, N, C = patches.shape
        h, w = site.grid
        if N != h * w:
            raise ValueError(f'{type(self).__name__}: {site.name} gets {N} patch tokens but the host grid is {h}x{w} '
                             '(patch dropout or a different input size?); VAPT needs the full grid')
        norm = self.prompt_norm[j]
        x = norm(patches.to(norm.weight.dtype))
        x = x.transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)
        kernel = self.prompt_kernel[j].expand(C, -1, -1, -1)  # (C, 1, K, K)
        x = F.conv2d(x, kernel, padding=self.padding, groups=C)  # (B, C, h', w')
        x = self.conv_dropout(x).flatten(2)  # (B, C, h'·w')
        p = self.token_proj[j](x).transpose(1, 2)  # (B, Np, C)
        if len(self.feature_mlp):
            p = self.feature_mlp[0 if self.share_projector else j](p)
        return p.to(patches.dtype)

    def prompts(self, site: SiteInfo, patches: Tensor) -> Tensor:
        i = self.index(site)
        if i < self.static_layers:
            return self.learned(self.prompt[i], patches)  # (B, Np, C)
        return self.generate(site, patches)

    def extra_repr(self) -> str:
        return (f'num_tokens={self.num_tokens}, layers={self.targeted or self.layers}, '
                f'static_layers={self.static_layers}, kernel_size={self.kernel_size}, hidden_dim={self.hidden_dim}')
