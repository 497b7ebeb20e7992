"""MMEngine-buildable wrappers, registered in ``promptkit.registry.MODELS``."""
from .prompted_backbone import PromptedBackbone, build_prompt, trainable_table

__all__ = ['PromptedBackbone', 'build_prompt', 'trainable_table']
