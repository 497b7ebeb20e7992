"""Sites run one host module class (an attention or a block) with a strategy's hooks, holding no parameters.

The install contract: a site either takes over the module's ``forward`` on the instance (:class:`ForwardSite`) or
uses the module's own extension point, a processor (:class:`ProcessorSite`, diffusers' ``Attention``). Both are
reversible (``install`` / ``remove``) and can say whether they are still in place (``installed``), so the host
can detect another library silently replacing one.
"""
from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from ..core import SiteInfo


class Site:
    """Base class of sites. Subclasses register in ``promptkit.registry.SITES`` and set:

    - ``targets``: the host module classes they run (classes or dotted paths, matched with ``isinstance``);
    - ``hook_names``: the strategy hooks they call.

    A site computes with the host module's own (frozen) weights and calls a hook where
    ``strategy.uses(hook, info)``. It is not an ``nn.Module``, so it adds nothing to ``state_dict``.
    """

    targets: ClassVar[tuple[Any, ...]] = ()
    hook_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, module: nn.Module, info: SiteInfo, strategy: nn.Module | None = None) -> None:
        self.module, self.info, self.strategy = module, info, strategy
        self.active = {h for h in self.hook_names if strategy is not None and strategy.uses(h, info)}

    def install(self) -> 'Site':
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    def installed(self) -> bool:
        raise NotImplementedError


class ForwardSite(Site):
    """Takes over ``module.forward`` on the instance; the host class is never forked. Subclasses implement
    ``forward`` with the module's own signature."""

    def install(self) -> 'ForwardSite':
        if 'forward' in vars(self.module):
            raise RuntimeError(f'{self.info.name} already has its forward taken over (prompts attached twice?)')
        self.module.forward = self.forward
        return self

    def remove(self) -> None:
        if self.installed():
            del self.module.forward

    def installed(self) -> bool:
        return vars(self.module).get('forward') == self.forward

    def forward(self, *args, **kwargs):
        raise NotImplementedError


class ProcessorSite(Site):
    """Installs itself as the module's processor (``module.set_processor(self)``), remembering the one it
    replaces, which ``remove`` puts back. Subclasses implement ``__call__`` with the processor signature."""

    def install(self) -> 'ProcessorSite':
        if isinstance(self.module.processor, ProcessorSite):
            raise RuntimeError(f'{self.info.name} already runs a promptkit processor (prompts attached twice?)')
        self.previous = self.module.processor
        self.module.set_processor(self)
        return self

    def remove(self) -> None:
        if self.installed():
            self.module.set_processor(self.previous)

    def installed(self) -> bool:
        return self.module.processor is self

    def __call__(self, *args, **kwargs):
        raise NotImplementedError
