"""Loading local weights into timm models (state dicts, promptkit checkpoints, Google's JAX ``.npz``), checked."""
from __future__ import annotations

import os.path as osp

from torch import nn

from ..checkpoint import CheckpointError, check_fit, promptkit_host_state, read_state_dict, strip_module

__all__ = ['load_timm_weights']


def load_timm_weights(model: nn.Module, path: str, load_head: bool = True) -> dict:
    """Load local weights into a timm model, checked key by key; the classifier head may be dropped.

    Reads timm state dicts (``.pth``/``.bin``/``.safetensors``, also nested under ``state_dict``/``model``), a
    promptkit classifier checkpoint (its ``backbone.*``, e.g. a full fine-tuning run), and Google's JAX ``.npz``
    (the ViT-B/16 ImageNet-21k weights VPT and VAPT start from; through timm's ``load_pretrained``). State dicts
    pass through timm's ``checkpoint_filter_fn`` for ViTs (OpenAI-CLIP layouts, position-embedding resampling).
    The classifier head is kept when its shape fits and ``load_head``; otherwise it keeps its initialisation.
    Every other tensor must be present with the right shape.

    Args:
        model: The timm model, filled in place.
        path: The weights file.
        load_head: Load the head when the class count matches. Defaults to True.

    Returns:
        A report: ``path``, ``loaded`` (number of tensors) and ``head`` (``'loaded'`` or why it was not).

    Raises:
        CheckpointError: The file is missing, unreadable or does not fit ``model`` (names the keys and shapes).
    """
    classifier = model.pretrained_cfg.get('classifier', 'head') if hasattr(model, 'pretrained_cfg') else 'head'
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    head_keys = {k for k in model.state_dict() if any(k.startswith(h + '.') for h in heads)}
    if path.endswith('.npz'):
        if not osp.isfile(path):
            raise CheckpointError(f'checkpoint file {path!r} does not exist; weights are never downloaded')
        if not hasattr(model, 'load_pretrained'):
            raise CheckpointError(f'{path}: .npz weights load only into timm VisionTransformer models')
        saved = {k: v.clone() for k, v in model.state_dict().items() if k in head_keys}
        model.load_pretrained(path)  # timm loads the head only when its shape fits
        if not load_head:
            model.load_state_dict(saved, strict=False)
        return dict(path=path, loaded=len(model.state_dict()), head='loaded by timm when it fits' if load_head
                    else 'not loaded (load_head=False)')

    state = strip_module(read_state_dict(path))
    state = promptkit_host_state(state) or state
    from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
    if isinstance(model, VisionTransformer):
        state = checkpoint_filter_fn(state, model)
    own = model.state_dict()
    head = 'loaded'
    file_head = {k for k in state if k in head_keys}
    if not load_head:
        head = 'not loaded (load_head=False)'
    elif not file_head:
        head = 'not in the file'
    elif any(state[k].shape != own[k].shape for k in file_head):
        head = f'not loaded: {tuple(state[sorted(file_head)[0]].shape)} in the file vs ' \
               f'{tuple(own[sorted(file_head)[0]].shape)} here (another class count)'
    if head != 'loaded':
        state = {k: v for k, v in state.items() if k not in head_keys}
    check_fit(path, f'timm {type(model).__name__}', own, state, may_miss=head_keys)
    model.load_state_dict(state, strict=False)
    return dict(path=path, loaded=len(state), head=head)
