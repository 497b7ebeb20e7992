"""Sites: one per host attention or block class, registered in ``promptkit.registry.SITES``. They hold no
parameters."""
from .base import ForwardSite, ProcessorSite, Site
from .diffusers_attention import DiffusersAttentionSite
from .fused_qkv import FusedQKVAttentionSite
from .mha import MultiheadAttentionSite
from .open_clip_attention import OpenCLIPAttentionSite
from .open_clip_block import OpenCLIPBlockSite, OpenCLIPCustomBlockSite
from .timm_attention import TimmAttentionSite
from .timm_block import TimmBlockSite
from .vit_block import VideoMAEBlockSite

__all__ = ['Site', 'ForwardSite', 'ProcessorSite', 'DiffusersAttentionSite', 'FusedQKVAttentionSite',
           'VideoMAEBlockSite', 'MultiheadAttentionSite', 'OpenCLIPAttentionSite',
           'OpenCLIPBlockSite', 'OpenCLIPCustomBlockSite', 'TimmAttentionSite', 'TimmBlockSite']
