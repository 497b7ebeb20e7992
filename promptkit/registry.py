"""promptkit's registries, children of MMEngine's roots (the pattern of ``mmaction/registry.py``).

``MODELS`` holds the wrappers (``PromptedBackbone``, ...); configs of another scope name them with the
``promptkit.`` prefix, e.g. ``backbone=dict(type='promptkit.PromptedBackbone', ...)``.
``PROMPTS`` holds the prompt strategies; wrappers build their ``prompt=dict(type=...)`` from it, so a user's own
strategy only needs ``@PROMPTS.register_module()`` in a module named by ``custom_imports``.
``HOSTS`` and ``SITES`` hold the classes that locate sites in a model and run one host module class; unlike the
others they are looked up by the *class of a module* (:func:`registered_for`, ``isinstance`` as PEFT dispatches),
so a user's own host is one decorated class in a module of their own.
"""
import sys
from typing import Any
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope, Registry
from torch import nn


class _ScopeOwnRegistry(Registry):
    """A root registry for a kind only promptkit has (prompt strategies): builds never search the default scope's
    tree for it (MMEngine would warn 'Failed to search registry with scope "mmaction" in the "prompt" registry
    tree' on every build made under another default scope, and then use this registry anyway)."""

    def switch_scope_and_registry(self, scope):
        current = DefaultScope.get_current_instance()
        name = scope or (current.scope_name if current is not None else None)
        if name is not None and self._get_root_registry()._search_child(name) is None:
            scope = self.scope  # the same registry MMEngine falls back to, without the warning
        return super().switch_scope_and_registry(scope)


MODELS = Registry('model', parent=MMENGINE_MODELS, scope='promptkit', locations=['promptkit.models'])
# MMEngine has no root for prompt strategies, so PROMPTS is a root of its own in the promptkit scope.
PROMPTS = _ScopeOwnRegistry('prompt', scope='promptkit', locations=['promptkit.strategies'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='promptkit', locations=['promptkit.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='promptkit', locations=['promptkit.engine'])
# A child of MMEngine's root, so mmcv's transforms stay reachable from the promptkit scope (image pipelines).
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='promptkit', locations=['promptkit.datasets'])
# Hosts and sites: looked up by module class with registered_for(), registered by name like every registry.
HOSTS = Registry('host', scope='promptkit', locations=['promptkit.hosts'])
SITES = Registry('site', scope='promptkit', locations=['promptkit.sites'])


def target_classes(targets: tuple[Any, ...]) -> list[type]:
    """Resolve ``targets`` (classes, or dotted paths ``'pkg.module.Class'``) to classes. A path resolves only once
    its module is imported: no model of that class can exist before, so nothing is imported here."""
    out = []
    for t in targets:
        if isinstance(t, type):
            out.append(t)
            continue
        module, _, name = t.rpartition('.')
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            out.append(cls)
    return out


def registered_for(registry: Registry, module: nn.Module) -> type | None:
    """The class in ``registry`` (``HOSTS`` or ``SITES``) whose ``targets`` match ``module`` by ``isinstance``; the
    most specific target wins (the earliest in the module's method resolution order; on a tie, the class
    registered last, so a user's own class overrides promptkit's). None when none does."""
    registry.import_from_location()
    mro = type(module).__mro__
    best, depth = None, len(mro)
    for cls in registry.module_dict.values():
        for target in target_classes(getattr(cls, 'targets', ())):
            if isinstance(module, target) and mro.index(target) <= depth:  # later registrations win ties
                best, depth = cls, mro.index(target)
    return best

# `_base_ = 'promptkit::...'` makes MMEngine tag every typed dict of that base with `_scope_='promptkit'` (as
# `mmaction::` bases get 'mmaction'), so the promptkit scope must also resolve what promptkit configs take from
# mmaction2 and MMEngine: metrics, samplers, loops, optimizers, schedulers, visualizers. These registries hold
# nothing of their own (except METRICS) and, as children of mmaction2's, find mmaction2's and MMEngine's classes.
from mmaction import registry as _mmaction  # noqa: E402

# Without a location MMEngine would call `promptkit.utils.register_all_modules`; importing promptkit registers all.
_NONE = ['promptkit']

METRICS = Registry('metric', parent=_mmaction.METRICS, scope='promptkit', locations=['promptkit.evaluation'])
EVALUATOR = Registry('evaluator', parent=_mmaction.EVALUATOR, scope='promptkit', locations=_NONE)
DATA_SAMPLERS = Registry('data sampler', parent=_mmaction.DATA_SAMPLERS, scope='promptkit', locations=_NONE)
LOOPS = Registry('loop', parent=_mmaction.LOOPS, scope='promptkit', locations=_NONE)
OPTIMIZERS = Registry('optimizer', parent=_mmaction.OPTIMIZERS, scope='promptkit', locations=_NONE)
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=_mmaction.OPTIM_WRAPPERS, scope='promptkit', locations=_NONE)
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor', parent=_mmaction.OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='promptkit', locations=_NONE)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=_mmaction.PARAM_SCHEDULERS, scope='promptkit',
                            locations=_NONE)
LOG_PROCESSORS = Registry('log_processor', parent=_mmaction.LOG_PROCESSORS, scope='promptkit', locations=_NONE)
VISUALIZERS = Registry('visualizer', parent=_mmaction.VISUALIZERS, scope='promptkit', locations=_NONE)
VISBACKENDS = Registry('vis_backend', parent=_mmaction.VISBACKENDS, scope='promptkit', locations=_NONE)
