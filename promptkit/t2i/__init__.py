"""Text-to-image helpers: the offline tiny model of the CPU demo."""
from .tiny import (build_clip_tokenizer, build_tiny_text_to_image, load_tiny_text_to_image,
                   save_tiny_text_to_image, write_clip_tokenizer_files)

__all__ = ['build_clip_tokenizer', 'build_tiny_text_to_image', 'load_tiny_text_to_image',
           'save_tiny_text_to_image', 'write_clip_tokenizer_files']
