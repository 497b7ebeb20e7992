"""The strategy base: owns every trainable tensor of a method and answers the sites' hook calls."""
from __future__ import annotations

from typing import ClassVar, Sequence

from torch import Tensor, nn

from ..core import HOOKS, Layers, SiteInfo, resolve_layers


class PromptStrategy(nn.Module):
    """Base class of prompt strategies.

    A subclass lists the hooks it implements in ``hooks`` and creates its parameters in ``build``, which the
    wrapper calls once with the sites the host found, before any forward. Sites call the hooks only on the
    layers the strategy targets (``uses``). Strategies never import a host library.

    Hooks (all optional):

    - ``extra_kv(site, q) -> (k, v)``: keys/values, (T, d), (H, T, d) or (B, H, T, d), appended inside attention.
    - ``attn_output(site, x, out) -> delta``: added to the attention output (after its projection); ``x`` is the
      attention input.
    - ``block_input(site, x) -> x`` / ``block_output(site, x) -> x``: the residual stream entering / leaving the
      block; may change the number of tokens (token prompts).
    - ``pre_mlp(site, x) -> x``: the residual stream before the MLP sub-layer.

    Args:
        layers: Which blocks to prompt: ``'all'``, the last ``n``, or a list of indices. Defaults to ``'all'``.
    """

    hooks: ClassVar[tuple[str, ...]] = ()
    #: Keep the frozen host in eval mode (dropout off) while the strategy trains, as VAPT's official code does.
    host_eval: ClassVar[bool] = False
    #: Host parameter roles this strategy also trains (e.g. ``'head_norm'``); hosts map roles to modules.
    host_roles: tuple[str, ...] = ()

    def __init__(self, layers: Layers = 'all') -> None:
        super().__init__()
        unknown = set(self.hooks) - set(HOOKS)
        if unknown:
            raise TypeError(f'{type(self).__name__} declares unknown hooks {sorted(unknown)}; known: {HOOKS}')
        self.layers = layers
        self.sites: list[SiteInfo] = []
        self.targeted: list[int] = []

    def setup(self, sites: Sequence[SiteInfo]) -> None:
        """Select the targeted sites and build the parameters. Called once by the wrapper."""
        if not sites:
            raise ValueError(f'{type(self).__name__}: the host has no attention sites')
        self.targeted = resolve_layers(self.layers, sites[0].num_layers)
        self.sites = [s for s in sites if s.layer in self.targeted]
        if not self.sites:
            raise ValueError(f'{type(self).__name__}: layers={self.layers!r} matched no site; the host has '
                             f'layers {sorted({s.layer for s in sites})}')
        self.build(self.sites)

    def build(self, sites: list[SiteInfo]) -> None:
        """Create parameters for the targeted ``sites``."""
        raise NotImplementedError

    def uses(self, hook: str, site: SiteInfo) -> bool:
        """Whether ``hook`` must be called at ``site``. Defaults to: declared and targeted."""
        return hook in self.hooks and site.layer in self.targeted

    def index(self, site: SiteInfo) -> int:
        """Position of ``site`` among the targeted layers, to index stacked per-layer parameters."""
        return self.targeted.index(site.layer)

    def extra_kv(self, site: SiteInfo, q: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def attn_output(self, site: SiteInfo, x: Tensor, out: Tensor) -> Tensor:
        raise NotImplementedError

    def block_input(self, site: SiteInfo, x: Tensor) -> Tensor:
        raise NotImplementedError

    def block_output(self, site: SiteInfo, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pre_mlp(self, site: SiteInfo, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f'layers={self.targeted or self.layers}'
