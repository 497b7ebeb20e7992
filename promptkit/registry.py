"""promptkit's registries, children of MMEngine's roots (the pattern of ``mmaction/registry.py``).

``MODELS`` holds the wrappers (``PromptedBackbone``, ...); configs of another scope name them with the
``promptkit.`` prefix, e.g. ``backbone=dict(type='promptkit.PromptedBackbone', ...)``.
``PROMPTS`` holds the prompt strategies; wrappers build their ``prompt=dict(type=...)`` from it, so a user's own
strategy only needs ``@PROMPTS.register_module()`` in a module named by ``custom_imports``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope, Registry


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
