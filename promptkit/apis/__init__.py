"""High-level entry points: inference on videos or images from a config and trained weights."""
from .inference import build_model, infer, load_weights

__all__ = ['infer', 'build_model', 'load_weights']
