"""The strategy base: owns every trainable tensor of a method and answers the sites' hook calls."""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from ..core import HOOKS, Layers, SiteInfo, select_sites


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else one clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = 'a positive int' if minimum == 1 else f'an int >= {minimum}'
        raise ValueError(f'{owner}: {name} must be {what}, got {value!r}')
    return value


def check_rate(owner: str, name: str, value: Any) -> float:
    """``value`` if it is a probability in [0, 1); else one clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f'{owner}: {name} must be in [0, 1), got {value!r}')
    return float(value)


class PromptStrategy(nn.Module):
    """Base class of prompt strategies.

    A subclass lists the hooks it implements in ``hooks`` and creates its parameters in ``build``, which the
    wrapper calls once (through ``setup``) with the sites the host found, before any forward. Parameters are per
    site, built with that site's own widths and indexed by :meth:`index`, so hosts whose sites differ in width (a
    UNet) work. Sites call the hooks only where :meth:`uses` says so. Strategies never import a host library.

    Hooks (all optional):

    - ``extra_kv(site, q) -> (k, v)``: keys/values, (T, d), (H, T, d) or (B, H, T, d), appended inside attention.
    - ``attn_output(site, x, out) -> delta``: added to the attention output (after its projection); ``x`` is the
      attention input.
    - ``block_input(site, x) -> x`` / ``block_output(site, x) -> x``: the residual stream entering / leaving the
      block; may change the number of tokens (token prompts).
    - ``pre_mlp(site, x) -> x``: the residual stream before the MLP sub-layer.

    Args:
        layers: Which sites to prompt by order index: ``'all'``, the last ``n``, or a list of indices. Defaults to
            ``'all'``.
        kinds: Attention kinds to prompt, ``'self'`` and/or ``'cross'``; None for all. Defaults to None.
        modules: A regular expression that the module path of a targeted site must match in full (PEFT's rule for
            a string ``target_modules``); None for every site. Defaults to None.
    """

    hooks: ClassVar[tuple[str, ...]] = ()
    #: Keep the frozen host in eval mode (dropout off) while the strategy trains, as VAPT's official code does.
    host_eval: ClassVar[bool] = False
    #: Host parameter roles this strategy also trains (e.g. ``'head_norm'``); hosts map roles to modules.
    host_roles: tuple[str, ...] = ()
    #: The smallest config of the strategy (without ``type``): the contract tests build every registered strategy
    #: that sets it on every registered host it fits. None leaves a strategy out of them.
    example: ClassVar[dict | None] = None

    def __init__(self, layers: Layers = 'all', kinds: Sequence[str] | str | None = None,
                 modules: str | None = None) -> None:
        super().__init__()
        unknown = set(self.hooks) - set(HOOKS)
        if unknown:
            raise TypeError(f'{type(self).__name__} declares unknown hooks {sorted(unknown)}; known: {HOOKS}')
        self.layers, self.kinds, self.modules = layers, kinds, modules
        self.sites: list[SiteInfo] = []
        self.targeted: list[int] = []
        self._index: dict[str, int] = {}
        #: The config the strategy was built from (set by ``build_prompt``), recorded in prompt_config.json.
        self.config: dict | None = None

    def setup(self, sites: Sequence[SiteInfo]) -> None:
        """Select the targeted sites and build the parameters. Called once by the wrapper."""
        self.sites = select_sites(sites, self.layers, self.kinds, self.modules, owner=type(self).__name__)
        for site in self.sites:
            reason = self.unfit(site)
            if reason is not None:
                raise ValueError(f'{type(self).__name__} cannot run at {site.name}: {reason}')
        self.targeted = sorted({s.layer for s in self.sites})
        self._index = {s.name: i for i, s in enumerate(self.sites)}
        self.build(self.sites)

    def build(self, sites: list[SiteInfo]) -> None:
        """Create parameters for the targeted ``sites``."""
        raise NotImplementedError

    def unfit(self, site: SiteInfo) -> str | None:
        """Why this strategy cannot run at ``site`` (its layout or grid), or None when it can. Defaults to None;
        ``setup`` refuses a targeted site that does not fit, with this reason."""
        return None

    def uses(self, hook: str, site: SiteInfo) -> bool:
        """Whether ``hook`` must be called at ``site``. Defaults to: declared and targeted."""
        return hook in self.hooks and site.name in self._index

    def index(self, site: SiteInfo) -> int:
        """Position of ``site`` among the targeted sites, to index per-site parameters."""
        return self._index[site.name]

    def noop_(self) -> 'PromptStrategy':
        """Set the parameters so the prompted model computes exactly the host's output, where the method has
        such a setting (used by the contract tests); strategies without one raise ``NotImplementedError``."""
        raise NotImplementedError(f'{type(self).__name__} has no exact no-op setting')

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


class TokenPrompt(PromptStrategy):
    """Base of strategies that insert prompt tokens into the residual stream (VPT, VAPT).

    Tokens go right after the host's prefix tokens (class / register tokens) at the first block that gets them,
    replace the previous prompt slots at every later one (:meth:`insert`), and leave after the model's last block
    (``block_output``), so pooling sees exactly the host's tokens. Subclasses implement :meth:`prompts`.

    Args:
        num_tokens: Prompt tokens per block.
        dropout: Dropout on prompts taken from parameters; the mask is drawn per sample, as in the official VPT
            and VAPT code. Defaults to 0.1.
        **kwargs: Targeting, see :class:`PromptStrategy`.
    """

    hooks = ('block_input', 'block_output')

    def __init__(self, num_tokens: int, dropout: float = 0.1, **kwargs) -> None:
        name = type(self).__name__
        self.num_tokens = check_int(name, 'num_tokens', num_tokens)
        super().__init__(**kwargs)
        self.dropout = nn.Dropout(check_rate(name, 'dropout', dropout))

    def unfit(self, site: SiteInfo) -> str | None:
        if site.layout == 'spatial':
            return 'token prompts need a token sequence with prefix tokens; feature maps (UNets) have none'
        return None

    def inserts_at(self, site: SiteInfo) -> bool:
        """Whether ``site``'s block gets prompts. Defaults to every targeted block."""
        return site.name in self._index

    def uses(self, hook: str, site: SiteInfo) -> bool:
        if hook == 'block_output':  # remove the prompts after the model's last block
            return site.layer == site.num_layers - 1
        return hook == 'block_input' and self.inserts_at(site)

    def prompts(self, site: SiteInfo, patches: Tensor) -> Tensor:
        """The (B, T, C) prompt tokens for ``site``'s block, given the patch tokens (B, N, C) entering it."""
        raise NotImplementedError

    def learned(self, prompt: Tensor, x: Tensor) -> Tensor:
        """Learned prompts (T, C) as (B, T, C) in ``x``'s dtype, with a dropout mask per sample."""
        return self.dropout(prompt.to(x.dtype).expand(x.shape[0], -1, -1))

    def insert(self, site: SiteInfo, x: Tensor, first: bool) -> Tensor:
        """``x`` with this block's prompts after its prefix tokens; ``first``: no prompt slots exist yet."""
        n0, T = site.num_prefix_tokens, self.num_tokens
        patches = x[:, n0:] if first else x[:, n0 + T:]
        return torch.cat([x[:, :n0], self.prompts(site, patches), patches], dim=1)

    def block_input(self, site: SiteInfo, x: Tensor) -> Tensor:
        return self.insert(site, x, first=self.index(site) == 0)

    def block_output(self, site: SiteInfo, x: Tensor) -> Tensor:
        n0 = site.num_prefix_tokens
        return torch.cat([x[:, :n0], x[:, n0 + self.num_tokens:]], dim=1)
