"""Hosts locate sites in a model of one framework and describe them; they never compute."""
from __future__ import annotations

from typing import ClassVar, Iterator

from torch import nn

from ..core import BLOCK_HOOKS, HOOKS, SiteInfo
from ..sites import Site


class Host:
    """Base class: one subclass per framework / model family.

    Subclasses implement ``matches`` and ``records`` (yielding a ``SiteInfo`` with the attention and block
    modules of each layer) and name the site classes to use. ``roles`` maps semantic parameter roles that
    strategies or configs may ask to train (``'head_norm'``) to module paths in the model.
    """

    name: ClassVar[str] = 'host'
    supported_hooks: ClassVar[tuple[str, ...]] = HOOKS
    attention_site: ClassVar[type[Site]]
    block_site: ClassVar[type[Site] | None] = None
    roles: ClassVar[dict[str, str]] = {}

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sites: list[Site] = []

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        raise NotImplementedError

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module]]:
        raise NotImplementedError

    def infos(self) -> list[SiteInfo]:
        return [info for info, _, _ in self.records()]

    def check(self, strategy: nn.Module) -> None:
        """Refuse, at build time, a strategy whose hooks this host cannot honour."""
        missing = [h for h in strategy.hooks if h not in self.supported_hooks]
        if missing:
            raise TypeError(f'{type(strategy).__name__} needs the hooks {missing}, which {self.name} cannot honour '
                            f'(it supports {list(self.supported_hooks)}); choose another prompt type for this model')

    def attach(self, strategy: nn.Module | None) -> list[Site]:
        """Take over every attention (and, where block hooks are used, every block) forward."""
        if self.sites:
            raise RuntimeError(f'prompts are already attached to this {self.name}')
        for info, attn, block in self.records():
            self.sites.append(self.attention_site(attn, info, strategy).install())
            if strategy is not None and any(strategy.uses(h, info) for h in BLOCK_HOOKS):
                self.sites.append(self.block_site(block, info, strategy).install())
        return self.sites

    def detach(self) -> None:
        """Give every module its own forward back."""
        for site in self.sites:
            site.remove()
        self.sites = []

    def role_module(self, role: str) -> nn.Module:
        if role not in self.roles:
            raise KeyError(f'{self.name} has no parameter role {role!r}; it knows {sorted(self.roles)}')
        module = self.model.get_submodule(self.roles[role]) if self.roles[role] else None
        if module is None:
            raise KeyError(f'{self.name}: role {role!r} ({self.roles[role]}) is absent from this model '
                           '(e.g. fc_norm needs use_mean_pooling=True)')
        return module
