"""Sites take over the forward of one host module (an attention or a block) without holding parameters."""
from __future__ import annotations

from torch import nn

from ..core import SiteInfo


class Site:
    """Replaces ``module.forward`` on the instance, reversibly; the host class is never forked.

    A site computes with the host module's own (frozen) weights and calls the strategy's hooks where
    ``strategy.uses(hook, info)``. It is not an ``nn.Module``, so it adds nothing to ``state_dict``.
    Subclasses set ``module_types`` (the host classes they understand, by class name) and implement ``forward``.
    """

    module_types: tuple[str, ...] = ()
    hook_names: tuple[str, ...] = ()

    def __init__(self, module: nn.Module, info: SiteInfo, strategy: nn.Module | None = None) -> None:
        self.module, self.info, self.strategy = module, info, strategy
        self.active = {h for h in self.hook_names if strategy is not None and strategy.uses(h, info)}

    def install(self) -> 'Site':
        if 'forward' in vars(self.module):
            raise RuntimeError(f'{self.info.name} already has its forward taken over (prompts attached twice?)')
        self.module.forward = self.forward
        return self

    def remove(self) -> None:
        vars(self.module).pop('forward', None)

    def forward(self, *args, **kwargs):
        raise NotImplementedError
