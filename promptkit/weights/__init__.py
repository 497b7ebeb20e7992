"""Weight loading, one module per host family: VideoMAE / mmaction2 ViTs, timm models, open_clip towers. Every
loader reads through :func:`promptkit.checkpoint.read_state_dict` and checks the fit key by key. Diffusers folders
are read by their components' own ``from_pretrained``, offline (``weights/diffusers.py``)."""
from .diffusers import load_components
from .open_clip import load_open_clip_tower
from .timm import load_timm_weights
from .videomae import load_videomae_backbone, videomae_to_mmaction

__all__ = ['load_videomae_backbone', 'videomae_to_mmaction', 'load_timm_weights', 'load_open_clip_tower',
           'load_components']
