"""Reading weight files, the one path every promptkit loader goes through: safetensors or weights-only
``torch.load``, nested state dicts unwrapped, errors that name the file. Fitting a state dict to a model is checked
here too; the per-family converters and loaders live in :mod:`promptkit.weights`. Weights are never downloaded.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Collection

import torch
from torch import Tensor

from ._compat import allow_mmengine_checkpoints

__all__ = ['CheckpointError', 'read_state_dict', 'strip_module', 'promptkit_host_state', 'check_fit', 'HOST_PREFIX']

#: Keys under which checkpoints nest their weights, unwrapped in this order (repeatedly).
_WRAPPER_KEYS = ('state_dict', 'model', 'module')
#: The prefix under which the wrappers hold their host: a checkpoint of a promptkit run has keys ``backbone.*``.
HOST_PREFIX = 'backbone.'


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model it should initialise."""


def read_state_dict(path: str, *, trust_pickle: bool = False) -> dict[str, Tensor]:
    """Read the tensors of a checkpoint file.

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``, which
    also accepts MMEngine checkpoints (their ``message_hub`` holds ``HistoryBuffer`` objects) and the
    ``argparse.Namespace`` the VideoMAE repository stores as ``args``.
    Nested ``state_dict`` / ``model`` / ``module`` entries are unwrapped; non-tensor entries are dropped.

    Args:
        path: The checkpoint file.
        trust_pickle: Load with ``weights_only=False`` (runs arbitrary pickled code: only for files you trust).

    Returns:
        The flat mapping from key to tensor.

    Raises:
        CheckpointError: The file does not exist, cannot be read, or holds no tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file {path!r} does not exist: point the config\'s pretrained= (or the '
                              'path argument) at an existing file; weights are never downloaded')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        try:
            obj: Any = load_file(path, device='cpu')
        except Exception as e:  # safetensors raises its own SafetensorError and OSError
            raise CheckpointError(f'cannot read safetensors file {path!r}: {e}') from e
    else:
        allow_mmengine_checkpoints()
        try:
            if trust_pickle:
                obj = torch.load(path, map_location='cpu', weights_only=False)
            else:
                obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if ln.startswith('WeightsUnpickler error')), lines[0] if lines else '')
            hint = ''
            if 'weights only' in str(e).lower():
                hint = (' The file holds Python objects that weights-only loading refuses; if you trust it, '
                        'convert it once with `python tools/convert_videomae.py SRC DST --trust-pickle` and '
                        'point pretrained= at DST.')
            raise CheckpointError(f'cannot read checkpoint {path!r}: {type(e).__name__}: {detail}{hint}') from e
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'checkpoint {path!r} holds a {type(obj).__name__}, not a state dict')
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise CheckpointError(f'checkpoint {path!r} holds no tensors (keys: {list(obj)[:10]})')
    return state


def strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``module.`` prefix DDP-wrapped checkpoints carry."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def promptkit_host_state(state: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """The host tensors of a promptkit classifier checkpoint (keys ``backbone.*``), or None for another format.

    The prompts, head and buffers of that run (``prompt.*``, ``head.*``, ...) are not part of the base.
    """
    if not any(k.startswith(HOST_PREFIX) for k in state):
        return None
    return {k[len(HOST_PREFIX):]: v for k, v in state.items() if k.startswith(HOST_PREFIX)}


def check_fit(path: str, what: str, own: dict[str, Tensor], state: dict[str, Tensor],
               may_miss: Collection[str] = ()) -> None:
    """Raise one error naming the missing, unexpected and mis-shaped tensors of ``state`` for a model's ``own``."""
    missing = [k for k in own if k not in state and k not in may_miss]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f'missing {len(missing)} tensors {missing[:8]}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected tensors {unexpected[:8]}')
    if shapes:
        parts.append('shape mismatches ' + ', '.join(f'{k}: file {a} vs model {b}' for k, a, b in shapes[:8]))
    raise CheckpointError(f'{path} does not fit {what}: ' + '; '.join(parts) + '. Check the architecture settings '
                          '(model name, img_size, patch_size, depth, ...) against the checkpoint')
