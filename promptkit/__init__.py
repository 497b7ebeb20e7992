"""promptkit: parameter-efficient prompt tuning of frozen video, vision-language and text-to-image models."""
from ._compat import allow_mmengine_checkpoints, skip_mmaction_multimodal, stub_mmaction_drn

# Before anything imports mmaction.models (see _compat for why).
stub_mmaction_drn()
skip_mmaction_multimodal()
allow_mmengine_checkpoints()

from .config_files import register_prefix  # noqa: E402

register_prefix()  # `promptkit::apt/videomae_ssv2.py` names a packaged config (see config_files)

from .attention import attention_impl, attention_reference, prompted_attention  # noqa: E402
from .core import HOOKS, SiteInfo, resolve_layers  # noqa: E402
from .registry import DATASETS, HOOKS as ENGINE_HOOKS, MODELS, PROMPTS  # noqa: E402
from . import strategies, hosts, models, engine, datasets  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
from .models import (FrameTower, OpenCLIPClassifier, PromptedBackbone, PromptedTextToImage,  # noqa: E402
                     TimmClassifier)
from .strategies import (AdaptivePrompt, ApproxPrompt, AttentionPrompt, DeepPrompt, PromptStrategy,  # noqa: E402
                         ShallowPrompt, STAdapter)
from .prompt_model import PromptModel, get_prompt_model  # noqa: E402

__version__ = '0.1.0'
__all__ = ['PROMPTS', 'MODELS', 'DATASETS', 'ENGINE_HOOKS', 'HOOKS', 'SiteInfo', 'resolve_layers',
           'prompted_attention', 'attention_impl', 'attention_reference', 'PromptStrategy', 'AttentionPrompt',
           'AdaptivePrompt', 'ApproxPrompt', 'DeepPrompt', 'ShallowPrompt', 'STAdapter', 'PromptedBackbone',
           'TimmClassifier', 'OpenCLIPClassifier', 'FrameTower', 'PromptModel', 'get_prompt_model',
           'PromptedTextToImage']
