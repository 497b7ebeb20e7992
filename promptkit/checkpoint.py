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

__all__ = ['CheckpointError', 'read_checkpoint', 'read_safetensors', 'read_state_dict', 'check_tensors', 'check_finite',
           'install_checked_loader', 'strip_module', 'promptkit_host_state', 'check_fit', 'HOST_PREFIX']

#: Keys under which checkpoints nest their weights, unwrapped in this order (repeatedly).
_WRAPPER_KEYS = ('state_dict', 'model', 'module')
#: The prefix under which the wrappers hold their host: a checkpoint of a promptkit run has keys ``backbone.*``.
HOST_PREFIX = 'backbone.'


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model it should initialise."""


_CORRUPT_FIX = ('the file is truncated or corrupted (an interrupted copy, download or write): copy it again from '
                'its source, or use another checkpoint of the run')


def read_safetensors(path: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a ``.safetensors`` file: ``(tensors, header metadata)``, with errors that name the file and the fix.

    Raises:
        CheckpointError: The file does not exist or is truncated / corrupted.
    """
    from safetensors import safe_open
    path = os.fspath(path)
    _exists(path)
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError and OSError
        raise CheckpointError(f'cannot read safetensors file {path!r} ({type(e).__name__}: {e}): '
                              f'{_CORRUPT_FIX}') from e
    return tensors, metadata


def read_checkpoint(path: str, *, trust_pickle: bool = False) -> Any:
    """Read a checkpoint file whole: every promptkit and MMEngine loader goes through here.

    ``.safetensors`` files are read with safetensors (a dict of tensors); anything else with
    ``torch.load(weights_only=True)``, which also accepts MMEngine checkpoints (their ``message_hub`` holds
    ``HistoryBuffer`` objects) and the ``argparse.Namespace`` the VideoMAE repository stores as ``args``.

    Args:
        path: The checkpoint file.
        trust_pickle: Load with ``weights_only=False`` (runs arbitrary pickled code: only for files you trust).

    Raises:
        CheckpointError: The file does not exist, is truncated or corrupted, or holds objects weights-only
            loading refuses.
    """
    path = os.fspath(path)
    _exists(path)
    if path.endswith('.safetensors'):
        return read_safetensors(path)[0]
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location='cpu', weights_only=not trust_pickle)
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith('WeightsUnpickler error')), lines[0] if lines else '')
        detail = detail.split('. ')[0].rstrip('.')  # the first sentence; torch appends a paragraph of advice
        if 'weights only' in str(e).lower():
            hint = ('The file holds Python objects that weights-only loading refuses; if you trust it, '
                    'convert it once with `python tools/convert_videomae.py SRC DST --trust-pickle` and '
                    'point pretrained= at DST.')
        else:
            hint = _CORRUPT_FIX[0].upper() + _CORRUPT_FIX[1:] + '.'
        raise CheckpointError(f'cannot read checkpoint {path!r}: {type(e).__name__}: {detail}. {hint}') from e


def _exists(path: str) -> None:
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file {path!r} does not exist: point the config\'s pretrained= (or the '
                              'path argument) at an existing file; weights are never downloaded')


def check_finite(path: str, tensors: Mapping[str, Tensor]) -> None:
    """Refuse tensors holding NaN or Inf, naming them.

    Raises:
        CheckpointError: Some floating-point tensor is not finite everywhere.
    """
    bad = [k for k, v in tensors.items()
           if isinstance(v, Tensor) and (v.is_floating_point() or v.is_complex()) and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f'{path!r} holds non-finite values (NaN or Inf) in {len(bad)} tensor(s): {bad[:10]}. The file is '
            'corrupted or the run that wrote it diverged: use an earlier checkpoint of that run, or train again (a lower '
            'learning rate, or without --amp).')


def check_tensors(path: str, tensors: Mapping[str, Tensor], expected: Mapping[str, Tensor],
                  what: str = 'this model') -> None:
    """Refuse a set of tensors that does not fit ``expected`` exactly: missing or extra keys, other shapes,
    a dtype of another kind (floating point vs integer), or non-finite values.

    Floating-point tensors of another precision are accepted (``load_state_dict`` casts them).

    Raises:
        CheckpointError: Naming the file, every mismatch (up to ten of each kind) and what to do.
    """
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    shapes = [f'{k}: file {tuple(tensors[k].shape)}, {what} {tuple(expected[k].shape)}' for k in sorted(tensors)
              if k in expected and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    dtypes = [f'{k}: file {tensors[k].dtype}, {what} {expected[k].dtype}' for k in sorted(tensors)
              if k in expected and tensors[k].is_floating_point() != expected[k].is_floating_point()]
    problems = [f'{len(missing)} missing: {missing[:10]}' if missing else '',
                f'{len(extra)} unexpected: {extra[:10]}' if extra else '',
                f'{len(shapes)} of another shape: {"; ".join(shapes[:10])}' if shapes else '',
                f'{len(dtypes)} of another dtype: {"; ".join(dtypes[:10])}' if dtypes else '']
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(
            f'{path!r} does not fit {what}: tensors ' + '; '.join(problems) + '. It was written for another '
            'prompt configuration or model size (prompt type, num_tokens, layers, embed_dims, num_classes): build '
            'the model with the config of the run that wrote it, or retrain for this config.')
    check_finite(path, tensors)


def read_state_dict(path: str, *, trust_pickle: bool = False) -> dict[str, Tensor]:
    """Read the tensors of a checkpoint file (see :func:`read_checkpoint`), refusing non-finite values.

    Nested ``state_dict`` / ``model`` / ``module`` entries are unwrapped; non-tensor entries are dropped.

    Args:
        path: The checkpoint file.
        trust_pickle: Load with ``weights_only=False`` (runs arbitrary pickled code: only for files you trust).

    Returns:
        The flat mapping from key to tensor.

    Raises:
        CheckpointError: The file does not exist, cannot be read, holds no tensors, or holds NaN / Inf.
    """
    path = os.fspath(path)
    obj = read_checkpoint(path, trust_pickle=trust_pickle)
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
    check_finite(path, state)
    return state


#: The file the checked MMEngine loader read last (for messages of hooks that see only the loaded dict).
last_loaded: str | None = None


def install_checked_loader() -> None:
    """Route MMEngine's local checkpoint loading (``load_from``, ``--resume``) through :func:`read_checkpoint`
    and :func:`check_finite`, with MMEngine's own scheme mechanism (``CheckpointLoader.register_scheme``)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any = None) -> Any:  # MMEngine logs 'by local backend'
        global last_loaded
        last_loaded = filename
        checkpoint = read_checkpoint(filename)
        state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else {}
        check_finite(filename, state if isinstance(state, Mapping) else {})
        return checkpoint

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


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
