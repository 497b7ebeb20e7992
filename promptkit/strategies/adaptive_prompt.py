"""VAPT, Visual Adaptive Prompt Tuning (Le et al., ICLR'26): prompts generated from the previous layer's patches."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Layers, SiteInfo
from ..registry import PROMPTS
from .base import PromptStrategy


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
class AdaptivePrompt(PromptStrategy):
    """VAPT (METHODS.md §3.2): VPT-deep whose prompts, after the first layers, are functions of the patch tokens.

    Among the targeted blocks, the first ``static_layers`` take static learnable prompts exactly as VPT-deep
    (init U(±sqrt(6 / (3·p_h·p_w + C))), dropout ``dropout``). Every later targeted block replaces the prompt
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
        norm_eps: Epsilon of the per-layer LayerNorms. Defaults to 1e-6.

    Examples:
        >>> import timm
        >>> from promptkit.models import attach_prompts
        >>> vit = timm.create_model('vit_base_patch16_224', pretrained=False)
        >>> host, vapt, _ = attach_prompts(vit, dict(type='AdaptivePrompt', num_tokens=10, hidden_dim=8))
        >>> sum(p.numel() for p in vapt.parameters())
        55608
    """

    hooks = ('block_input', 'block_output')
    #: Wrappers keep the frozen host in eval mode (no host dropout / drop path) while this strategy trains.
    host_eval: bool = True

    def __init__(self, num_tokens: int, layers: Layers = 'all', static_layers: int = 1, kernel_size: int = 2,
                 padding: int = 0, hidden_dim: int | None = 8, share_projector: bool = True,
                 share_kernel: bool = True, residual: bool = True, dropout: float = 0.1, conv_dropout: float = 0.1,
                 mlp_dropout: float = 0.1, norm_eps: float = 1e-6) -> None:
        name = type(self).__name__
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'{name}: num_tokens must be a positive int, got {num_tokens!r}')
        if not isinstance(static_layers, int) or static_layers < 0:
            raise ValueError(f'{name}: static_layers must be an int >= 0, got {static_layers!r}')
        if kernel_size <= 0 or padding < 0 or (hidden_dim is not None and hidden_dim <= 0):
            raise ValueError(f'{name}: need kernel_size > 0, padding >= 0 and hidden_dim > 0 (or None), got '
                             f'kernel_size={kernel_size}, padding={padding}, hidden_dim={hidden_dim}')
        super().__init__(layers)
        self.num_tokens, self.static_layers = num_tokens, static_layers
        self.kernel_size, self.padding, self.hidden_dim = kernel_size, padding, hidden_dim
        self.share_projector, self.share_kernel, self.residual = share_projector, share_kernel, residual
        self.mlp_dropout, self.norm_eps = mlp_dropout, norm_eps
        self.dropout = nn.Dropout(dropout)
        self.conv_dropout = nn.Dropout2d(conv_dropout)

    def build(self, sites: list[SiteInfo]) -> None:
        name, C, Np, K = type(self).__name__, sites[0].dim, self.num_tokens, self.kernel_size
        if self.static_layers > len(sites):
            raise ValueError(f'{name}: static_layers={self.static_layers} exceeds the {len(sites)} targeted blocks')
        n_static, n_adaptive = self.static_layers, len(sites) - self.static_layers
        self.prompt = nn.Parameter(torch.empty(n_static, Np, C)) if n_static else None
        if self.prompt is not None:
            ph, pw = sites[0].patch_size
            bound = math.sqrt(6.0 / (3 * ph * pw + C))
            nn.init.uniform_(self.prompt, -bound, bound)
        if not n_adaptive:
            return
        grid = sites[0].grid
        if grid is None or len(grid) != 2:
            raise ValueError(f'{name} needs a static 2-D patch grid from the host (image ViTs with a fixed input '
                             f'size); this host reports grid={grid}')
        h, w = (g + 2 * self.padding - K + 1 for g in grid)  # conv output grid (h', w')
        if h <= 0 or w <= 0:
            raise ValueError(f'{name}: kernel_size={K} with padding={self.padding} does not fit the {grid} grid')
        self.prompt_norm = nn.ModuleList(nn.LayerNorm(C, eps=self.norm_eps) for _ in range(n_adaptive))
        # One K×K kernel per adaptive block, shared by all channels ((1, 1, K, K)) or per channel ((C, 1, K, K)).
        self.prompt_kernel = nn.Parameter(torch.randn(n_adaptive, 1 if self.share_kernel else C, 1, K, K))
        self.token_proj = nn.ModuleList(nn.Linear(h * w, Np) for _ in range(n_adaptive))
        for proj in self.token_proj:
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        n_mlp = 0 if self.hidden_dim is None else 1 if self.share_projector else n_adaptive
        self.feature_mlp = nn.ModuleList(PromptMLP(C, self.hidden_dim, self.mlp_dropout, self.residual)
                                         for _ in range(n_mlp))

    def uses(self, hook: str, site: SiteInfo) -> bool:
        if hook == 'block_output':  # remove the prompts after the model's last block
            return site.layer == site.num_layers - 1
        return hook == 'block_input' and site.layer in self.targeted

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

    def block_input(self, site: SiteInfo, x: Tensor) -> Tensor:
        i, n0, T = self.index(site), site.num_prefix_tokens, self.num_tokens
        patches = x[:, n0:] if i == 0 else x[:, n0 + T:]  # the first targeted block has no prompt slots yet
        if i < self.static_layers:
            p = self.dropout(self.prompt[i]).to(x.dtype).expand(x.shape[0], -1, -1)  # (B, Np, C)
        else:
            p = self.generate(site, patches)
        return torch.cat([x[:, :n0], p, patches], dim=1)

    def block_output(self, site: SiteInfo, x: Tensor) -> Tensor:
        n0 = site.num_prefix_tokens
        return torch.cat([x[:, :n0], x[:, n0 + self.num_tokens:]], dim=1)

    def extra_repr(self) -> str:
        return (f'num_tokens={self.num_tokens}, layers={self.targeted or self.layers}, '
                f'static_layers={self.static_layers}, kernel_size={self.kernel_size}, hidden_dim={self.hidden_dim}')
