"""MMEngine-buildable wrappers, registered in ``promptkit.registry.MODELS``."""
from ..artifacts import trainable_table
from .prompted_backbone import PromptedBackbone, attach_prompts, build_prompt
from .frame_tower import FrameTower
from .image_classifier import PromptedImageClassifier
from .open_clip_classifier import OpenCLIPClassifier
from .timm_classifier import TimmClassifier
from .text_to_image import PromptedTextToImage

__all__ = ['PromptedBackbone', 'attach_prompts', 'build_prompt', 'trainable_table', 'PromptedImageClassifier',
           'TimmClassifier', 'OpenCLIPClassifier', 'FrameTower', 'PromptedTextToImage']
