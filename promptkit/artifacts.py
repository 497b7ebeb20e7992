"""Prompt-only artifacts: ``prompts.safetensors`` (the trained tensors, config in the header) and
``prompt_config.json`` beside it, bound to the frozen base by a fingerprint."""
from __future__ import annotations

import json
import os
import os.path as osp

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .engine.hooks import frozen_fingerprint, trained_state_dict

TENSORS, CONFIG = 'prompts.safetensors', 'prompt_config.json'


def _targets(model: nn.Module) -> list[dict]:
    from .models import PromptedBackbone, PromptedImageClassifier, PromptedTextToImage
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (PromptedBackbone, PromptedImageClassifier, PromptedTextToImage)):
            out.append(dict(module=name, host=m.host.name, prompt=type(m.prompt).__name__ if m.prompt else None,
                            sites=[s.info.name for s in m.host.sites if s.active], train_roles=list(m.train_roles),
                            **(m.artifact_info() if hasattr(m, 'artifact_info') else {})))
    return out


def save_prompts(model: nn.Module, out_dir: str, base_fingerprint: str | None = None,
                 config: dict | None = None) -> str:
    """Write the trained tensors of ``model`` and a JSON description into ``out_dir``; returns the tensor file.

    Args:
        model: The (unwrapped) model, e.g. a ``Recognizer3D`` with a ``PromptedBackbone``.
        out_dir: Folder to write ``prompts.safetensors`` and ``prompt_config.json`` into.
        base_fingerprint: Fingerprint of the frozen weights; computed when not given.
        config: The model config, recorded for reference.
    """
    from . import __version__
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in trained_state_dict(model).items()}
    info = dict(promptkit_version=__version__, base_fingerprint=base_fingerprint or frozen_fingerprint(model),
                targets=_targets(model), tensors={k: list(v.shape) for k, v in tensors.items()},
                model=config.to_dict() if hasattr(config, 'to_dict') else config)
    text = json.dumps(info, indent=2, default=str)
    path = osp.join(out_dir, TENSORS)
    save_file(tensors, path, metadata={'format': 'pt', 'promptkit': text})
    with open(osp.join(out_dir, CONFIG), 'w') as f:
        f.write(text + '\n')
    return path


def load_prompts(model: nn.Module, path: str) -> dict:
    """Load a ``prompts.safetensors`` onto ``model`` after checking it belongs to this frozen base.

    Raises:
        FileNotFoundError: No such file.
        RuntimeError: The file was trained on another base, or its tensors do not fit this model's trainable set.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt file {path} does not exist; tools/train.py writes it as '
                                f'<work_dir>/{TENSORS} at the end of training')
    with safe_open(path, framework='pt') as f:
        info = json.loads(f.metadata()['promptkit'])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    found = frozen_fingerprint(model)
    if info['base_fingerprint'] != found:
        raise RuntimeError(f'{path} was trained on another frozen base (fingerprint {info["base_fingerprint"]}, '
                           f'this model has {found}): build the model with the pretrained weights of that run')
    expected = set(trained_state_dict(model))
    if set(tensors) != expected:
        raise RuntimeError(f'{path} does not fit this model: missing {sorted(expected - set(tensors))[:10]}, '
                           f'unexpected {sorted(set(tensors) - expected)[:10]}')
    model.load_state_dict(tensors, strict=False)
    return info
