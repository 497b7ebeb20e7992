"""Prompts on a diffusers pipeline the user built: ``load_prompts(pipe, path)`` and ``unload_prompts(pipe)``.

This module is ``promptkit.diffusers``; it imports the ``diffusers`` package only by absolute import.

Examples:
    >>> from diffusers import StableDiffusionPipeline
    >>> from promptkit.diffusers import load_prompts, unload_prompts
    >>> pipe = StableDiffusionPipeline.from_pretrained('checkpoints/sd15', local_files_only=True)
    >>> load_prompts(pipe, 'work_dirs/sd15_dreambooth/prompts.safetensors')
    >>> image = pipe('a photo of sks dog on the beach').images[0]
    >>> unload_prompts(pipe)   # the pipeline as it was
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any

import torch

from promptkit.artifacts import TENSORS
from promptkit.hosts import find_host
from promptkit.models.prompted_backbone import build_prompt
from promptkit.models.text_to_image import base_fingerprints

__all__ = ['load_prompts', 'unload_prompts', 'read_prompt_file']

#: The PEFT adapter name a LoRA from a promptkit artifact is loaded under.
ADAPTER = 'promptkit'


def read_prompt_file(path: str) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """Resolve ``path`` (a ``prompts.safetensors`` file, or a folder holding one) and read it.

    Returns:
        The file path, the promptkit description of its header, and its tensors.
    """
    from safetensors import safe_open

    file = osp.join(path, TENSORS) if osp.isdir(path) else path
    if not osp.isfile(file):
        raise FileNotFoundError(f'no prompt file at {path!r}: give the {TENSORS} that tools/train.py writes into the '
                                'work dir, or a folder holding it (PromptedTextToImage.save_pretrained writes one)')
    with safe_open(file, framework='pt') as f:
        meta = f.metadata() or {}
        if 'promptkit' not in meta:
            raise ValueError(f'{file} is a safetensors file without a promptkit header: not a promptkit prompt file')
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return file, json.loads(meta['promptkit']), tensors


def _text_to_image_target(file: str, info: dict) -> dict:
    targets = [t for t in info.get('targets', []) if 'fingerprints' in t]
    if len(targets) != 1:
        raise ValueError(f'{file} was not written by a PromptedTextToImage model (its targets are '
                         f'{[t.get("host") for t in info.get("targets", [])]}); load it with the wrapper it came from')
    return targets[0]


def load_prompts(pipe: Any, path: str) -> dict:
    """Attach the prompts (and a LoRA trained with them) of a promptkit artifact to ``pipe.unet``.

    The pipeline's UNet and text encoder(s) must be the frozen base the prompts were trained on: their fingerprints
    (weights in float16, so a half-precision pipeline of the same weights matches) are compared with the file's,
    and a different base is refused naming both. The strategy is rebuilt from the recorded config, filled from the
    file, put on the UNet's device and in eval mode, and installed as attention processors.

    Args:
        pipe: A diffusers pipeline with ``unet`` and ``text_encoder`` (``StableDiffusionPipeline``,
            ``StableDiffusionXLPipeline``, ``PixelTextToImagePipeline``, ...).
        path: ``prompts.safetensors``, or a folder holding it.

    Returns:
        The artifact's description (its ``prompt_config.json`` content).

    Raises:
        RuntimeError: The pipeline has another base, or prompts are already loaded.
        ValueError: The file is not a text-to-image prompt file, or is a full fine-tuning artifact.
    """
    if getattr(pipe, '_promptkit', None) is not None:
        raise RuntimeError('this pipeline already has promptkit prompts: call unload_prompts(pipe) first')
    file, info, tensors = read_prompt_file(path)
    target = _text_to_image_target(file, info)
    if target.get('full_finetune'):
        raise ValueError(f'{file} holds a fully fine-tuned UNet, not prompts: build PromptedTextToImage with '
                         'full_finetune=True and load it there')
    unet = pipe.unet
    found = base_fingerprints(unet, pipe.text_encoder, getattr(pipe, 'text_encoder_2', None))
    expected = target['fingerprints']
    wrong = [k for k in expected if expected[k] != found.get(k)]
    if wrong:
        raise RuntimeError(f'{file} was trained on another base: ' + ', '.join(
            f'{k} fingerprint {expected[k]} in the file, {found.get(k)} in this pipeline' for k in wrong) +
            '. Build the pipeline from the diffusers folder the prompts were trained on')

    strategy = host = None
    prompt_cfg = target.get('prompt_cfg')
    if prompt_cfg is not None:
        host = find_host(unet)
        strategy = build_prompt(prompt_cfg)
        host.check(strategy)
        strategy.setup(host.infos())
        own = {f'prompt.{k}' for k in strategy.state_dict()}
        given = {k for k in tensors if k.startswith('prompt.')}
        if own != given:
            raise RuntimeError(f'{file} does not fit the strategy its config builds: missing {sorted(own - given)[:8]}'
                               f', unexpected {sorted(given - own)[:8]}')
        strategy.load_state_dict({k[len('prompt.'):]: v for k, v in tensors.items() if k.startswith('prompt.')})
        strategy.to(unet.device).eval().requires_grad_(False)
        host.attach(strategy)
    if target.get('lora') is not None:
        _load_lora(unet, target['lora'], tensors, file)
    pipe._promptkit = dict(host=host, strategy=strategy, lora=target.get('lora') is not None, file=file)
    return info


def _load_lora(unet, lora: dict, tensors: dict, file: str) -> None:
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict

    cfg = dict(lora)
    cfg.setdefault('lora_alpha', cfg.get('r', 8))
    cfg.setdefault('target_modules', ['to_q', 'to_k', 'to_v', 'to_out.0'])
    cfg.pop('init_lora_weights', None)
    unet.add_adapter(LoraConfig(**cfg), adapter_name=ADAPTER)
    # The file holds the wrapper's names: unet.<module>.lora_A.default.weight (PEFT's default adapter name).
    state = {k[len('unet.'):].replace('.default.', '.'): v for k, v in tensors.items()
             if k.startswith('unet.') and 'lora_' in k}
    if not state:
        raise RuntimeError(f'{file} records a LoRA but holds no unet.*lora_* tensors')
    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    unexpected = getattr(result, 'unexpected_keys', [])
    if unexpected:
        raise RuntimeError(f'{file}: LoRA tensors that fit no module of this UNet: {unexpected[:8]}')


def unload_prompts(pipe: Any) -> None:
    """Remove what :func:`load_prompts` attached: the prompt processors (the previous processors come back) and
    the LoRA adapter it added. The pipeline is then as it was before."""
    state = getattr(pipe, '_promptkit', None)
    if state is None:
        raise RuntimeError('this pipeline has no promptkit prompts to unload')
    if state['host'] is not None:
        state['host'].detach()
    if state['lora']:
        pipe.unet.delete_adapters(ADAPTER)
    pipe._promptkit = None
