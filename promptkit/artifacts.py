"""Everything promptkit writes or checks about a run's results, in one place: the fingerprint of the frozen base,
the trained state, and the prompt-only artifact (``prompts.safetensors`` with ``prompt_config.json`` beside it).

It works for every wrapper through one small interface: a *wrapper* is a module with ``backbone`` (the host model),
``host`` (its :class:`~promptkit.hosts.Host`), ``prompt`` (the strategy or None), ``train_roles`` and
``full_finetune`` (``PromptedBackbone``, the image classifiers and the other wrappers all have them). The MMEngine
checkpoint hook only calls these functions.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .checkpoint import CheckpointError, check_tensors, read_safetensors
from .hosts import Host

TENSORS, CONFIG = 'prompts.safetensors', 'prompt_config.json'

__all__ = ['TENSORS', 'CONFIG', 'fingerprint', 'frozen_fingerprint', 'wrappers', 'trained_state_dict',
           'trainable_table', 'describe', 'save_prompts', 'read_prompt_config', 'load_prompts']


def fingerprint(tensors: Mapping[str, Tensor]) -> str:
    """A short sha256 over the names, shapes, dtypes and raw bytes of ``tensors`` (order-independent).

    Args:
        tensors: Name -> tensor, on any device, any dtype (bfloat16 included).

    Returns:
        The first 16 hex digits of the digest.
    """
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        if not isinstance(t, Tensor):
            raise TypeError(f'fingerprint: {key!r} is a {type(t).__name__}, not a tensor')
        data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        h.update(f'{key}\0{tuple(t.shape)}\0{t.dtype}\0{data.nbytes}\n'.encode())
        h.update(data)
    return h.hexdigest()[:16]


def frozen_fingerprint(model: nn.Module) -> str:
    """Fingerprint of every frozen parameter: the base a set of prompts belongs to."""
    return fingerprint({n: p for n, p in model.named_parameters() if not p.requires_grad})


def wrappers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The promptkit wrappers inside ``model`` (itself included), as (module path, wrapper)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(getattr(m, 'host', None), Host)
            and hasattr(m, 'backbone')]


def trained_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The tensors a run changes: trainable parameters, and buffers except those of frozen hosts (their buffers,
    e.g. VideoMAE's sinusoid ``pos_embed``, come with the base weights)."""
    path = {id(m): name for name, m in model.named_modules()}  # a host by where it sits (PromptModel: base_model.*)
    frozen_hosts = tuple(f'{path[id(m.backbone)]}.' for _, m in wrappers(model)
                         if not all(p.requires_grad for p in m.backbone.parameters()) and path.get(id(m.backbone)))
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers() if not n.startswith(frozen_hosts)}
    return {k: v for k, v in model.state_dict().items() if k in keep}


def trainable_table(model: nn.Module) -> str:
    """One row per trainable parameter (name, shape, count), then the PEFT-style summary line."""
    rows, total, trainable = [], 0, 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            rows.append((name, tuple(p.shape), p.numel()))
    width = max([len(r[0]) for r in rows] + [9])
    lines = [f'{"parameter":<{width}}  {"shape":<20} {"count":>10}']
    lines += [f'{n:<{width}}  {str(s):<20} {c:>10,}' for n, s, c in rows]
    pct = 100 * trainable / max(total, 1)
    lines.append(f'trainable params: {trainable:,} || all params: {total:,} || trainable%: {pct:.4f}')
    return '\n'.join(lines)


def describe(model: nn.Module) -> list[dict[str, Any]]:
    """Per wrapper: where it sits, its host, the strategy and the config it was built from (enough to rebuild
    it), the sites it targets and the host roles it trains."""
    out = []
    for name, m in wrappers(model):
        strategy = m.prompt
        out.append(dict(module=name, host=m.host.name, prompt=type(strategy).__name__ if strategy else None,
                        prompt_cfg=getattr(strategy, 'config', None),
                        sites=[s.name for s in getattr(strategy, 'sites', [])], train_roles=list(m.train_roles),
                        full_finetune=bool(m.full_finetune)))
        out[-1].update(getattr(m, 'artifact_info', dict)())  # PromptModel: what from_pretrained rebuilds it from
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version('promptkit')
    except PackageNotFoundError:  # run from a source tree that was never installed
        return 'unknown'


def _atomic_write(path: str, write) -> None:
    """Write through a temporary file in the same folder and rename, so a kill never leaves half a file."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def save_prompts(model: nn.Module, out_dir: str, base_fingerprint: str | None = None,
                 config: Any = None) -> str:
    """Write the trained tensors of ``model`` and a JSON description into ``out_dir``; returns the tensor file.

    Args:
        model: The (unwrapped) model, e.g. a ``Recognizer3D`` with a ``PromptedBackbone``.
        out_dir: Folder to write ``prompts.safetensors`` and ``prompt_config.json`` into.
        base_fingerprint: Fingerprint of the frozen weights; computed when not given.
        config: The model config, recorded for reference.
    """
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in trained_state_dict(model).items()}
    info = dict(promptkit_version=_version(), base_fingerprint=base_fingerprint or frozen_fingerprint(model),
                targets=describe(model), tensors={k: list(v.shape) for k, v in tensors.items()},
                model=config.to_dict() if hasattr(config, 'to_dict') else config)
    text = json.dumps(info, indent=2, default=str)
    path = osp.join(out_dir, TENSORS)
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={'format': 'pt', 'promptkit': text}))

    def write_json(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text + '\n')
    _atomic_write(osp.join(out_dir, CONFIG), write_json)
    return path


def _tensor_file(path: str) -> str:
    path = os.fspath(path)
    if osp.isdir(path):
        path = osp.join(path, TENSORS)
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt file {path} does not exist; training writes it as <work_dir>/{TENSORS} '
                                '(save_pretrained writes it into the folder it is given)')
    return path


def read_prompt_config(path: str) -> dict[str, Any]:
    """The description saved with a prompt file (the file, or the folder holding it): ``prompt_config.json`` when
    present beside it, else the copy in the safetensors header."""
    path = _tensor_file(path)
    beside = osp.join(osp.dirname(path), CONFIG)
    if osp.isfile(beside):
        with open(beside) as f:
            return json.load(f)
    with safe_open(path, framework='pt') as f:
        return json.loads((f.metadata() or {})['promptkit'])


def load_prompts(model: nn.Module, path: str) -> dict[str, Any]:
    """Load a ``prompts.safetensors`` (or the folder holding it) onto ``model`` after checking it belongs to this
    frozen base and to this model's strategies.

    Raises:
        FileNotFoundError: No such file.
        RuntimeError: The file was trained on another base or for another strategy, or its tensors do not fit this
            model's trainable set.
    """
    path = _tensor_file(path)
    tensors, metadata = read_safetensors(path)  # refuses a truncated or corrupted file, naming it
    if 'promptkit' not in metadata:
        raise CheckpointError(f"{path} is a safetensors file without promptkit's header: pass the {TENSORS} that "
                              'training wrote, or a .pth checkpoint')
    info = json.loads(metadata['promptkit'])
    saved = [(t['module'], t['prompt']) for t in info.get('targets', [])]
    here = [(t['module'], t['prompt']) for t in describe(model)]
    if saved and saved != here:  # before the base: another strategy may also train other host tensors
        raise RuntimeError(f'{path} holds prompts for {saved} (module, prompt type), but this model has {here}: build '
                           'the model with the prompt config of that run (see prompt_config.json beside the file)')
    found = frozen_fingerprint(model)
    if info['base_fingerprint'] != found:
        raise RuntimeError(f'{path} was trained on another frozen base (fingerprint {info["base_fingerprint"]}, '
                           f'this model has {found}): build the model with the pretrained weights of that run')
    check_tensors(path, tensors, trained_state_dict(model))  # keys, shapes, dtype kinds, finite values
    model.load_state_dict(tensors, strict=False)
    return info
