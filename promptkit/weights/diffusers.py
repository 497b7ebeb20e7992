"""Loading a local diffusers folder (``model_index.json`` + one subfolder per component), offline."""
from __future__ import annotations

import importlib
import json
import os.path as osp
from typing import Any

__all__ = ['COMPONENTS', 'load_components']

#: The components a diffusers text-to-image folder may hold, in ``model_index.json``'s names.
COMPONENTS = ('unet', 'text_encoder', 'tokenizer', 'text_encoder_2', 'tokenizer_2', 'vae', 'scheduler')


def load_components(folder: str) -> dict[str, Any]:
    """Load every component named in ``folder/model_index.json`` from its subfolder, offline.

    The classes come from the index (``["diffusers", "UNet2DConditionModel"]``, ``["transformers",
    "CLIPTextModel"]``, ...), so SD 1.x/2.x, SDXL and VAE-less folders load alike. Nothing is downloaded
    (``local_files_only=True``).

    Raises:
        FileNotFoundError: ``folder`` is not a diffusers folder (no ``model_index.json``).
    """
    index_file = osp.join(folder, 'model_index.json')
    if not osp.isfile(index_file):
        raise FileNotFoundError(f'pretrained={folder!r} is not a diffusers folder (no model_index.json); point it '
                                'at a local folder written by save_pretrained (hub ids are never downloaded), or give '
                                'the components as unet=/text_encoder=/tokenizer= configs')
    with open(index_file) as f:
        index = json.load(f)
    out = {}
    for name in COMPONENTS:
        entry = index.get(name)
        if not entry or entry[0] is None or not osp.isdir(osp.join(folder, name)):
            continue
        lib, cls = entry
        klass = getattr(importlib.import_module(lib), cls)
        out[name] = klass.from_pretrained(folder, subfolder=name, local_files_only=True)
    return out
