"""An optimiser over the trainable parameters only, with MMEngine's param-wise rules unchanged.

MMEngine's ``DefaultOptimWrapperConstructor`` already leaves frozen parameters out of the param-wise groups, but
warns once per frozen parameter (hundreds of lines for a frozen ViT-B), and without ``paramwise_cfg`` hands every
parameter to the optimiser. This constructor gives the optimiser the trainable ones only and drops that warning.
"""
from __future__ import annotations

import logging

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

__all__ = ['TrainableOptimWrapperConstructor']


class _NoFrozenWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'is skipped since its requires_grad=False' not in str(record.msg)


class _Trainable(nn.Module):
    """A view of ``model`` whose ``parameters()`` are the trainable ones (for the no-``paramwise_cfg`` path)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, 'model', model)  # not a submodule: no second registration of its parameters

    def parameters(self, recurse: bool = True):
        return (p for p in self.model.parameters(recurse) if p.requires_grad)


# In MMEngine's root registry: found from every scope (children fall back to the root).
@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` over ``requires_grad`` parameters only (the tools use it unless a
    config names another ``optim_wrapper.constructor``)."""

    def __call__(self, model: nn.Module) -> OptimWrapper:
        model = model.module if hasattr(model, 'module') else model
        if not self.paramwise_cfg:
            return super().__call__(_Trainable(model))
        logger = MMLogger.get_current_instance()
        quiet = _NoFrozenWarnings()
        logger.addFilter(quiet)
        try:
            return super().__call__(model)
        finally:
            logger.removeFilter(quiet)
