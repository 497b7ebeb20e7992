"""MMEngine-buildable wrappers, registered in ``promptkit.registry.MODELS``."""
from .prompted_backbone import PromptedBackbone, attach_prompts, build_prompt, trainable_table
from .image_classifier import OpenCLIPClassifier, PromptedImageClassifier, TimmClassifier
from .text_to_image import PromptedTextToImage

__all__ = ['PromptedBackbone', 'attach_prompts', 'build_prompt', 'trainable_table', 'PromptedImageClassifier',
           'TimmClassifier', 'OpenCLIPClassifier', 'PromptedTextToImage']
