"""Hosts locate sites in a model of one framework and describe them; they never compute."""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterator

from torch import nn

from ..core import BLOCK_HOOKS, SiteInfo
from ..registry import SITES, registered_for
from ..sites import Site


class Host:
    """Base class of hosts: one subclass per framework / model family, registered in ``promptkit.registry.HOSTS``.

    A subclass sets ``targets`` (the model classes it understands, classes or dotted paths, matched with
    ``isinstance``), may refine ``matches``, and implements ``records``: one ``(SiteInfo, attention module, block
    module or None)`` per site. The site class that runs each module comes from ``SITES``, by the module's class,
    so a host never names one. ``roles`` maps parameter roles that strategies or configs may ask to train
    (``'head_norm'``) to module paths in the model.

    Attaching installs the sites and a forward pre-hook on the model that checks, before every forward, that each
    site is still in place: a site another library replaced later fails loudly instead of silently running the
    host unprompted.
    """

    name: ClassVar[str] = 'host'
    targets: ClassVar[tuple[Any, ...]] = ()
    roles: ClassVar[dict[str, str]] = {}

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sites: list[Site] = []
        self._guard = None
        self._plan: list[tuple[SiteInfo, nn.Module, type[Site], nn.Module | None, type[Site] | None]] | None = None

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Further conditions beyond ``isinstance(model, targets)``. Defaults to True."""
        return True

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module | None]]:
        raise NotImplementedError

    def plan(self) -> list[tuple[SiteInfo, nn.Module, type[Site], nn.Module | None, type[Site] | None]]:
        """Every record with the registered site classes of its attention and block modules."""
        if self._plan is None:
            plan = []
            for info, attn, block in self.records():
                attn_site = registered_for(SITES, attn)
                if attn_site is None:
                    raise TypeError(f'{self.name}: {info.name} is a {type(attn).__module__}.{type(attn).__name__}, '
                                    'which no registered site runs; register one with @SITES.register_module() '
                                    '(docs/adding_a_host.md)')
                plan.append((info, attn, attn_site, block, None if block is None else registered_for(SITES, block)))
            self._plan = plan
        return self._plan

    def infos(self) -> list[SiteInfo]:
        return [p[0] for p in self.plan()]

    @property
    def supported_hooks(self) -> tuple[str, ...]:
        """The hooks every site of this model can honour (its attention site's, plus its block site's)."""
        sets = [set(a.hook_names) | set(b.hook_names if b is not None else ()) for _, _, a, _, b in self.plan()]
        common = set.intersection(*sets) if sets else set()
        return tuple(h for h in ('extra_kv', 'attn_output', *BLOCK_HOOKS) if h in common)

    def check(self, strategy: nn.Module) -> None:
        """Refuse, at build time, a strategy whose hooks this host cannot honour."""
        missing = [h for h in strategy.hooks if h not in self.supported_hooks]
        if missing:
            raise TypeError(f'{type(strategy).__name__} needs the hooks {missing}, which {self.name} cannot honour '
                            f'(it supports {list(self.supported_hooks)}); choose another prompt type for this model')

    def attach(self, strategy: nn.Module | None) -> list[Site]:
        """Install a site on every attention (and, where block hooks are used, every block), and the guard."""
        if self.sites:
            raise RuntimeError(f'prompts are already attached to this {self.name}')
        for info, attn, attn_site, block, block_site in self.plan():
            self.sites.append(attn_site(attn, info, strategy).install())
            if strategy is not None and any(strategy.uses(h, info) for h in BLOCK_HOOKS):
                if block_site is None:
                    raise TypeError(f'{type(strategy).__name__} uses block hooks at {info.name}, but {self.name} '
                                    f'has no block site there ({type(block).__name__ if block else "no block"})')
                self.sites.append(block_site(block, info, strategy).install())
        self._guard = self.model.register_forward_pre_hook(self._check_installed)
        return self.sites

    def _check_installed(self, module: nn.Module, args: Any) -> None:
        for site in self.sites:
            if not site.installed():
                raise RuntimeError(
                    f'the promptkit site at {site.info.name} was replaced after the prompts were attached (by '
                    'another library: e.g. diffusers set_attn_processor() or fuse_qkv_projections(), or a forward '
                    'patched on the module), so this forward would silently run without them. Call those before '
                    'attaching the prompts, or detach and attach again')

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the model unprompted (still through the sites) inside the block."""
        saved = [site.active for site in self.sites]
        for site in self.sites:
            site.active = set()
        try:
            yield
        finally:
            for site, active in zip(self.sites, saved):
                site.active = active

    def detach(self) -> None:
        """Give every module its own forward (or processor) back and remove the guard."""
        for site in reversed(self.sites):
            site.remove()
        self.sites = []
        if self._guard is not None:
            self._guard.remove()
            self._guard = None

    def role_module(self, role: str) -> nn.Module:
        if role not in self.roles:
            raise KeyError(f'{self.name} has no parameter role {role!r}; it knows {sorted(self.roles)}')
        module = self.model.get_submodule(self.roles[role]) if self.roles[role] else None
        if module is None:
            raise KeyError(f'{self.name}: role {role!r} ({self.roles[role]}) is absent from this model '
                           '(e.g. fc_norm needs use_mean_pooling=True)')
        return module
