"""promptkit's registries, children of MMEngine's roots (the pattern of ``mmaction/registry.py``).

``MODELS`` holds the wrappers (``PromptedBackbone``, ...); configs of another scope name them with the
``promptkit.`` prefix, e.g. ``backbone=dict(type='promptkit.PromptedBackbone', ...)``.
``PROMPTS`` holds the prompt strategies; wrappers build their ``prompt=dict(type=...)`` from it, so a user's own
strategy only needs ``@PROMPTS.register_module()`` in a module named by ``custom_imports``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='promptkit', locations=['promptkit.models'])
# MMEngine has no root for prompt strategies, so PROMPTS is a root of its own in the promptkit scope.
PROMPTS = Registry('prompt', scope='promptkit', locations=['promptkit.strategies'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='promptkit', locations=['promptkit.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='promptkit', locations=['promptkit.engine'])
# A child of MMEngine's root, so mmcv's transforms stay reachable from the promptkit scope (image pipelines).
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='promptkit', locations=['promptkit.datasets'])
# Evaluators (text-to-image metrics, the digits judge), children of MMEngine's root like mmaction2's.
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='promptkit', locations=['promptkit.evaluation'])
