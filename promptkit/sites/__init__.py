"""Sites: one per host attention or block class. They hold no parameters."""
from .base import Site
from .fused_qkv import FusedQKVAttentionSite
from .vit_block import VideoMAEBlockSite

__all__ = ['Site', 'FusedQKVAttentionSite', 'VideoMAEBlockSite']
