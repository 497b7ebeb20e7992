"""Hosts: one per framework. ``find_host`` picks the one that understands a model."""
from torch import nn

from .base import Host
from .diffusers import DiffusersUNetHost
from .mmaction import MMActionViTHost
from .open_clip import OpenCLIPVisualHost
from .timm import TimmViTHost

HOSTS: list[type[Host]] = [MMActionViTHost, TimmViTHost, OpenCLIPVisualHost, DiffusersUNetHost]


def find_host(model: nn.Module) -> Host:
    """Return a host for ``model``, or fail naming the supported model classes."""
    for cls in HOSTS:
        if cls.matches(model):
            return cls(model)
    raise TypeError(f'promptkit cannot attach prompts to a {type(model).__module__}.{type(model).__name__}: '
                    f'supported models are {[h.name for h in HOSTS]}')


__all__ = ['Host', 'MMActionViTHost', 'DiffusersUNetHost', 'HOSTS', 'find_host']
