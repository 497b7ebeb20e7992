"""ST-Adapter (Pan et al., NeurIPS'22): depth-wise 3-D convolution adapters on the residual stream of a video ViT."""
from __future__ import annotations

from typing import ClassVar

from typing import Sequence

import torch
from torch import Tensor, nn

from ..core import Layers, SiteInfo, current_frames
from ..registry import PROMPTS
from .base import PromptStrategy, check_int

#: Where an adapter can sit, and the block hook that puts it there (the residual stream before that sub-layer's
#: LayerNorm). Parameters are always ordered this way, whatever order a config lists the positions in.
POSITIONS = {'attn': 'block_input', 'mlp': 'pre_mlp'}
ACTIVATIONS = (None, 'gelu')


class DWConvAdapter(nn.Module):
    """One ST-Adapter: ``fc2(act(DWConv3d(fc1(z))))`` on the patch tokens ``z`` of one clip.

    fc1 is Linear(C -> Ca) with bias; the convolution is depth-wise (groups = Ca) over the (t, h, w) token grid
    with bias, stride 1 and zero padding ``k // 2`` on each axis (odd kernels keep the grid); fc2 is
    Linear(Ca -> C) with bias. Initialisation as in the official code: convolution weight and bias 0, fc biases 0,
    fc weights PyTorch's default, so the adapter's output is exactly 0 until the convolution has learnt something.

    Args:
        dim: Width of the residual stream (C).
        width: Bottleneck width (Ca).
        kernel_size: Convolution kernel (kt, kh, kw), odd sizes.
        activation: ``None`` (the released code) or ``'gelu'`` (after the convolution). Defaults to None.
    """

    def __init__(self, dim: int, width: int, kernel_size: tuple[int, int, int],
                 activation: str | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, width)
        self.conv = nn.Conv3d(width, width, kernel_size, stride=1, padding=tuple(k // 2 for k in kernel_size),
                              groups=width)
        self.act = nn.GELU() if activation == 'gelu' else nn.Identity()
        self.fc2 = nn.Linear(width, dim)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, z: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """The adapter's output (the delta to add) for patch tokens ``z``, (B, t·h·w, C) in (t, h, w) order."""
        B, N, _ = z.shape
        t, h, w = grid
        z = self.fc1(z)  # (B, N, Ca)
        z = z.reshape(B, t, h, w, -1).permute(0, 4, 1, 2, 3)  # (B, Ca, t, h, w)
        z = self.act(self.conv(z))  # (B, Ca, t, h, w)
        z = z.permute(0, 2, 3, 4, 1).reshape(B, N, -1)  # (B, N, Ca), (t, h, w) order again
        return self.fc2(z)  # (B, N, C)


@PROMPTS.register_module()
class STAdapter(PromptStrategy):
    """ST-Adapter, as in the official code (docs/methods.md): a bottleneck with a depth-wise 3-D convolution
    added to the residual stream of a frozen video transformer.

    In every targeted block, an adapter acts on the residual stream before the attention sub-layer (``'attn'``,
    the stream entering the block, before its first LayerNorm) and/or before the MLP sub-layer (``'mlp'``, before
    the second LayerNorm): ``x <- x + fc2(DWConv3d(fc1(x)))`` on the patch tokens, reshaped to the host's
    (t, h, w) token grid for the convolution (see :class:`DWConvAdapter`). Class / register tokens
    (``num_prefix_tokens``) bypass the adapter unchanged. The add is out of place (the official code adds in place).

    The released code has no nonlinearity, so each adapter is a linear map of the patch tokens; ``activation=
    'gelu'`` puts a GELU after the convolution, as the re-implementation in the official repo's issue #8 does.
    The default kernel (3, 1, 1) (both official presets) mixes only neighbouring time steps: the adapter's
    output at time t depends on times t-1..t+1 of the same patch.

    Zero-initialised convolutions make the adapted model equal to the frozen host at initialisation. Only the
    adapters are trained here (the wrapper trains the task head); the host's pooled-feature norm stays frozen,
    as the official code keeps CLIP's ``ln_post`` frozen. Trainable parameters per adapter, for width C, adapter
    width Ca and kernel volume k: ``2·C·Ca + (k + 2)·Ca + C`` (fc1, convolution with bias, fc2), i.e.
    ``2·C·Ca + 5·Ca + C`` = 592,512 for C = 768, Ca = 384, k = 3.

    Official presets (CLIP ViT-B/16, every block):

    - ``adapter12x384`` (Kinetics-400): ``positions=('mlp',)``, width 384, 7.11M parameters.
    - ``adapter24x384`` (Something-Something v2): ``positions=('attn', 'mlp')``, width 384, 14.22M parameters.

    The default is the 12x384 preset: one adapter per block, the smaller of the two presets, and the one whose
    size (7.1M of ViT-B's 86M) matches the abstract's "about 8% per-task parameters"; data sets where motion
    matters most (SSv2) use ``positions=('attn', 'mlp')``, as ``configs/st_adapter/videomae_ssv2.py`` does.

    The host must report a static (t, h, w) patch grid (mmaction2's VideoMAE ``VisionTransformer``), or be an image
    tower run per frame (layout ``'frames'``, ``promptkit.FrameTower``), where the (h, w) grid is static and T comes
    with each forward; an image tower on its own is refused at build time, and an input whose token count differs
    from the grid fails at the forward.

    Args:
        width: Adapter bottleneck width (Ca). Defaults to 384.
        positions: Where to put adapters in each targeted block: ``'attn'`` (before the attention sub-layer)
            and/or ``'mlp'`` (before the MLP sub-layer). Defaults to ``('mlp',)``.
        kernel_size: Depth-wise convolution kernel (kt, kh, kw), odd sizes; zero padding ``k // 2`` keeps the
            grid. Defaults to (3, 1, 1).
        activation: ``None`` (no nonlinearity, the released code) or ``'gelu'`` (after the convolution, issue #8).
            Defaults to None.
        layers: Blocks that get adapters: ``'all'``, the last ``n`` (the official ``adapter_layers=n``) or a list
            of indices. Defaults to ``'all'``.
        **kwargs: ``kinds`` / ``modules`` targeting, see :class:`PromptStrategy`.

    Examples:
        >>> backbone = dict(type='promptkit.PromptedBackbone',
        ...                 backbone=dict(type='VisionTransformer', embed_dims=768, depth=12, num_heads=12),
        ...                 prompt=dict(type='STAdapter', width=384, positions=('attn', 'mlp')))
    """

    #: Both hooks the strategy can use; an instance keeps only those of its ``positions``.
    #: The smallest config, for the contract tests and examples. Block 0 only: on a host that reads the class
    #: token alone (FrameTower), the last block's pre-MLP adapter cannot reach the output (class tokens bypass it).
    example: ClassVar[dict] = dict(width=8, positions=('attn', 'mlp'), layers=[0])
    hooks = ('block_input', 'pre_mlp')
    host_roles: tuple[str, ...] = ()

    def __init__(self, width: int = 384, positions: Sequence[str] | str = ('mlp',),
                 kernel_size: Sequence[int] = (3, 1, 1), activation: str | None = None,
                 layers: Layers = 'all', **kwargs) -> None:
        name = type(self).__name__
        check_int(name, 'width', width)
        positions = (positions,) if isinstance(positions, str) else tuple(positions)
        unknown = [p for p in positions if p not in POSITIONS]
        if not positions or unknown or len(set(positions)) != len(positions):
            raise ValueError(f'{name}: positions must list distinct entries of {tuple(POSITIONS)}, got {positions!r}')
        kernel_size = tuple(kernel_size) if isinstance(kernel_size, (list, tuple)) else kernel_size
        if not isinstance(kernel_size, tuple) or len(kernel_size) != 3 or \
                not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 and k % 2 for k in kernel_size):
            raise ValueError(f'{name}: kernel_size must be three odd positive ints (kt, kh, kw), e.g. (3, 1, 1), '
                             f'got {kernel_size!r}; even sizes would change the token grid')
        if activation not in ACTIVATIONS:
            raise ValueError(f'{name}: activation must be one of {ACTIVATIONS}, got {activation!r}')
        super().__init__(layers, **kwargs)
        self.width, self.kernel_size, self.activation = width, kernel_size, activation
        self.positions = tuple(p for p in POSITIONS if p in positions)  # canonical order: 'attn', then 'mlp'
        self.hooks = tuple(POSITIONS[p] for p in self.positions)  # only the hooks in use, for the host check

    def unfit(self, site: SiteInfo) -> str | None:
        if site.layout == 'frames' and site.grid is not None and len(site.grid) == 2:
            return None  # an image tower run per frame: T arrives with each forward
        if site.layout == 'tokens' and site.grid is not None and len(site.grid) == 3:
            return None  # a video transformer with a static (t, h, w) grid
        return (f'it needs video: its depth-wise 3-D convolution runs over a (t, h, w) patch-token grid, but the '
                f'site has layout {site.layout!r} and grid={site.grid}. Use a video backbone such as mmaction2\'s '
                'VideoMAE VisionTransformer, or run an image tower per frame inside promptkit.FrameTower')

    def build(self, sites: list[SiteInfo]) -> None:
        self.adapters = nn.ModuleDict({
            p: nn.ModuleList(DWConvAdapter(s.dim, self.width, self.kernel_size, self.activation) for s in sites)
            for p in self.positions})

    def noop_(self) -> 'STAdapter':
        """Zero convolutions (the initialisation): every adapter adds exactly nothing."""
        with torch.no_grad():
            for adapters in self.adapters.values():
                for adapter in adapters:
                    adapter.conv.weight.zero_()
                    adapter.conv.bias.zero_()
        return self

    def grid(self, site: SiteInfo, z: Tensor) -> tuple[int, int, int]:
        """The (t, h, w) grid of the patch tokens ``z`` (B, N, C) at ``site``, checked against the token count."""
        ph, pw = site.patch_size
        if site.layout == 'frames':
            h, w = site.grid
            t = current_frames(site)
            if z.shape[1] != h * w or z.shape[0] % t:
                raise ValueError(f'{type(self).__name__}: {site.name} gets {tuple(z.shape[:2])} (frames, patch tokens) '
                                 f'but each frame should have h x w = {h} x {w} patch tokens and the batch a multiple '
                                 f'of T = {t} frames; feed frames of {h * ph}x{w * pw} pixels')
            return t, h, w
        t, h, w = site.grid
        if z.shape[1] != t * h * w:
            raise ValueError(
                f'{type(self).__name__}: {site.name} gets {z.shape[1]} patch tokens but the host\'s token grid is '
                f't x h x w = {t} x {h} x {w} = {t * h * w}, which the adapters\' 3-D convolution needs exactly. '
                f'Feed clips of {t * site.tubelet_size} frames of {h * ph}x{w * pw} pixels, or build the backbone '
                'with num_frames / img_size matching the input (mmaction2 interpolates the position embedding to '
                'other frame sizes, but the adapters\' grid is fixed when the model is built)')
        return t, h, w

    def adapt(self, position: str, site: SiteInfo, x: Tensor) -> Tensor:
        """The residual stream ``x`` with ``position``'s adapter added to its patch tokens: (B, prefix + t·h·w, C)
        for a video transformer, (B·T, prefix + h·w, C) for an image tower run per frame."""
        n0 = site.num_prefix_tokens
        z = x[:, n0:]  # patch tokens; prefix tokens bypass the adapter
        t, h, w = self.grid(site, z)
        adapter = self.adapters[position][self.index(site)]
        clips = z.reshape(-1, t * h * w, z.shape[-1])  # (B, t·h·w, C): consecutive frames of one clip
        delta = adapter(clips.to(adapter.fc1.weight.dtype), (t, h, w)).to(x.dtype).reshape(z.shape)
        if n0 == 0:
            return x + delta
        return torch.cat([x[:, :n0], z + delta], dim=1)

    def block_input(self, site: SiteInfo, x: Tensor) -> Tensor:
        return self.adapt('attn', site, x)

    def pre_mlp(self, site: SiteInfo, x: Tensor) -> Tensor:
        return self.adapt('mlp', site, x)

    def extra_repr(self) -> str:
        return (f'width={self.width}, positions={self.positions}, kernel_size={self.kernel_size}, '
                f'activation={self.activation}, layers={self.targeted or self.layers}')
