"""Hosts: one per framework, registered in ``promptkit.registry.HOSTS``. ``find_host`` picks the one that
understands a model, by its class."""
from torch import nn

from ..registry import HOSTS, registered_for
from .base import Host
from .diffusers import DiffusersUNetHost
from .frame_tower import FrameTowerHost
from .mmaction import MMActionViTHost
from .open_clip import OpenCLIPVisualHost
from .timm import TimmViTHost


def find_host(model: nn.Module) -> Host:
    """Return a host for ``model``, or fail naming the model classes the registered hosts understand."""
    cls = registered_for(HOSTS, model)
    if cls is not None and cls.matches(model):
        return cls(model)
    known = [f'{h.name} ({", ".join(t if isinstance(t, str) else t.__qualname__ for t in h.targets)})'
             for h in HOSTS.module_dict.values()]
    raise TypeError(f'promptkit cannot attach prompts to a {type(model).__module__}.{type(model).__name__}: '
                    f'the registered hosts understand {known}. A host of your own: docs/adding_a_host.md')


__all__ = ['Host', 'HOSTS', 'DiffusersUNetHost', 'FrameTowerHost', 'MMActionViTHost', 'OpenCLIPVisualHost',
           'TimmViTHost', 'find_host']
