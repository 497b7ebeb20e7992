"""Reading VideoMAE weights into mmaction2's VideoMAE ``VisionTransformer``, with errors that say what to fix.

Understands four layouts (detected from the key names):

- ``videomae_pretrain``: the original VideoMAE repository's pre-training checkpoints (``encoder.*`` plus a decoder,
  ``encoder_to_decoder``, ``mask_token``), weights under ``model``;
- ``videomae_finetune``: its fine-tuned checkpoints (``patch_embed.proj``, ``mlp.fc1``/``mlp.fc2``, ``fc_norm``,
  ``head``), under ``model`` or ``module``, keys possibly prefixed with ``module.`` or ``backbone.``;
- ``mmaction_recognizer``: an mmaction2 recognizer checkpoint (``backbone.*``, ``cls_head.fc_cls.*``) under
  ``state_dict``;
- ``mmaction_backbone``: a bare mmaction2 backbone state dict (for example a ``.safetensors`` file).

Weights are never downloaded and never resized: a checkpoint that does not fit the configured backbone is an error.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..checkpoint import CheckpointError, read_state_dict

__all__ = ['videomae_to_mmaction', 'load_videomae_backbone']

#: Original VideoMAE name fragment -> mmaction2 name fragment (applied to keys relative to the backbone).
_RENAMES = (('patch_embed.proj.', 'patch_embed.projection.'), ('.mlp.fc1.', '.mlp.layers.0.0.'),
            ('.mlp.fc2.', '.mlp.layers.1.'))
_HEAD_KEYS = {'head.weight': 'weight', 'head.bias': 'bias',
              'cls_head.fc_cls.weight': 'weight', 'cls_head.fc_cls.bias': 'bias'}
_FIX_ARCH = ('the checkpoint is for another backbone: check embed_dims/depth/num_heads/mlp_ratio/patch_size/'
             'tubelet_size/num_frames/img_size in the config against the checkpoint')


def _rename(key: str) -> str:
    """Map an original VideoMAE backbone key (relative to the backbone) to mmaction2's name."""
    for old, new in _RENAMES:
        if old.startswith('.'):
            key = key.replace(old, new)
        elif key.startswith(old):
            key = new + key[len(old):]
    return key


def videomae_to_mmaction(state: Mapping[str, Tensor],
                         keep_encoder_norm: bool = False) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Convert a VideoMAE or mmaction2 state dict to mmaction2 ``VisionTransformer`` key names.

    Args:
        state: The flat state dict (as returned by :func:`read_state_dict`).
        keep_encoder_norm: For pre-training checkpoints, map ``encoder.norm.*`` to ``norm.*`` (for a backbone
            built with ``use_mean_pooling=False``) instead of ignoring it.

    Returns:
        ``(backbone_state, extras)``: the backbone tensors with mmaction2 names and no prefix, and a dict with
        ``format`` (``'videomae_pretrain'``, ``'videomae_finetune'``, ``'mmaction_recognizer'``,
        ``'mmaction_backbone'`` or ``'unknown'``), ``head`` (``{'weight', 'bias'}`` of a classification head, or
        empty) and ``ignored`` (the keys dropped). An ``'unknown'`` state yields no backbone tensors.
    """
    stripped: dict[str, Tensor] = {}
    for key, value in state.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        stripped[key] = value
    if any(k.startswith('backbone.backbone.') for k in stripped):
        # A promptkit recognizer (PromptedBackbone inside Recognizer3D): the host sits one level deeper; the
        # prompts of that run are not part of the base.
        stripped = {(k[len('backbone.'):] if k.startswith('backbone.backbone.') else k): v
                    for k, v in stripped.items() if not k.startswith('backbone.prompt.')}

    backbone: dict[str, Tensor] = {}
    head: dict[str, Tensor] = {}
    ignored: list[str] = []
    if any(k.startswith(('encoder.blocks.', 'encoder.patch_embed.')) for k in stripped):
        fmt = 'videomae_pretrain'
        for key, value in stripped.items():
            sub = key[len('encoder.'):] if key.startswith('encoder.') else None
            if sub is None or sub.startswith('head.') or (sub.startswith('norm.') and not keep_encoder_norm):
                ignored.append(key)  # decoder.*, encoder_to_decoder.*, mask_token, pos_embed, encoder.norm.*
            else:
                backbone[_rename(sub)] = value
        return backbone, {'format': fmt, 'head': head, 'ignored': ignored}

    prefixed = any(k.startswith('backbone.') for k in stripped)
    body: dict[str, Tensor] = {}
    head_from_cls_head = False
    for key, value in stripped.items():
        if key in _HEAD_KEYS:
            head[_HEAD_KEYS[key]] = value
            head_from_cls_head |= key.startswith('cls_head.')
        elif prefixed and not key.startswith('backbone.'):
            ignored.append(key)  # other cls_head.* entries, data_preprocessor.*, ...
        else:
            body[key[len('backbone.'):] if prefixed else key] = value
    videomae_names = any(k.startswith('patch_embed.proj.') or '.mlp.fc1.' in k or '.mlp.fc2.' in k for k in body)
    mmaction_names = any(k.startswith('patch_embed.projection.') or '.mlp.layers.' in k for k in body)
    if videomae_names and not mmaction_names:
        fmt = 'videomae_finetune'
        backbone = {_rename(k): v for k, v in body.items()}
    elif mmaction_names:
        fmt = 'mmaction_recognizer' if prefixed or head_from_cls_head else 'mmaction_backbone'
        backbone = body
    else:
        return {}, {'format': 'unknown', 'head': {}, 'ignored': list(state)}
    return backbone, {'format': fmt, 'head': head, 'ignored': ignored}


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def load_videomae_backbone(backbone: nn.Module, path: str, logger: Any = None) -> dict[str, Any]:
    """Load a VideoMAE / mmaction2 checkpoint into an mmaction2 VideoMAE ``VisionTransformer``, checked.

    Every converted tensor must exist in ``backbone`` with the same shape (``pos_embed`` included: positions are
    never interpolated). The only backbone tensors the checkpoint may lack are ``fc_norm.*`` (pre-training
    checkpoints have none; it keeps its initialisation) and a sinusoid (buffer, not learnable) ``pos_embed``
    (the VideoMAE repository does not store it).

    Args:
        backbone: The backbone to fill, in place.
        path: The checkpoint file (see :func:`read_state_dict`).
        logger: Passed to ``mmengine.logging.print_log`` for the one-line summary.

    Returns:
        A report: ``path``, ``format``, ``loaded`` (keys), ``missing`` (allowed missing keys), ``ignored`` (keys of
        the file that were dropped) and ``head`` (classification head tensors found in the file, maybe empty).

    Raises:
        CheckpointError: The file is missing or unreadable, is not a VideoMAE / mmaction2 ViT checkpoint, or does
            not fit ``backbone`` (shapes, missing or surplus tensors).
    """
    from mmengine.logging import print_log

    path = os.fspath(path)
    state = read_state_dict(path)
    model_state = backbone.state_dict()
    converted, extras = videomae_to_mmaction(state, keep_encoder_norm='norm.weight' in model_state)
    fmt = extras['format']

    matched = [k for k in converted if k in model_state]
    if not matched:
        raise CheckpointError(
            f'{path!r} does not look like a VideoMAE / mmaction2 ViT checkpoint (layout {fmt!r}): none of its '
            f'{len(state)} tensors (e.g. {sorted(state)[:5]}) is a tensor of the {type(backbone).__name__} '
            f'(e.g. {list(model_state)[:3]}). Point pretrained= at a VideoMAE pre-training or fine-tuned checkpoint '
            'or at an mmaction2 VideoMAE checkpoint.')

    mismatched = [(k, _shape(model_state[k]), _shape(converted[k])) for k in matched
                  if _shape(model_state[k]) != _shape(converted[k])]
    if mismatched:
        listed = '; '.join(f'{k}: model expects {m}, checkpoint has {c}' for k, m, c in mismatched[:10])
        more = f' (and {len(mismatched) - 10} more)' if len(mismatched) > 10 else ''
        _, m, c = mismatched[0]
        if [k for k, _, _ in mismatched] == ['pos_embed'] and len(m) == len(c) == 3 and m[2] == c[2]:
            fix = (f'the checkpoint has {c[1]} positions, the model {m[1]} = (img_size/patch_size)^2 * '
                   'num_frames/tubelet_size: it was trained with another num_frames or img_size; set them in the '
                   'config to the checkpoint\'s values (positional embeddings are not interpolated)')
        else:
            fix = _FIX_ARCH
        raise CheckpointError(f'checkpoint {path!r} does not fit the backbone: {len(mismatched)} tensor(s) have '
                              f'another shape: {listed}{more}. Likely fix: {fix}.')

    surplus = [k for k in converted if k not in model_state]
    if surplus:
        raise CheckpointError(
            f'checkpoint {path!r} (layout {fmt!r}) holds {len(surplus)} backbone tensor(s) the model lacks: '
            f'{surplus[:10]}. Likely fix: {_FIX_ARCH}; also depth, init_values (gamma_1/gamma_2), qkv_bias '
            '(q_bias/v_bias) and use_mean_pooling (fc_norm vs norm).')

    learnable_pos = isinstance(getattr(backbone, 'pos_embed', None), nn.Parameter)
    missing = [k for k in model_state if k not in converted]
    allowed = [k for k in missing if k.startswith('fc_norm.') or (k == 'pos_embed' and not learnable_pos)]
    not_allowed = [k for k in missing if k not in allowed]
    if not_allowed:
        raise CheckpointError(
            f'checkpoint {path!r} (layout {fmt!r}) lacks {len(not_allowed)} tensor(s) of the backbone: '
            f'{not_allowed[:10]}{" ..." if len(not_allowed) > 10 else ""}. Likely fix: {_FIX_ARCH}; also depth, '
            'init_values (gamma_1/gamma_2), qkv_bias (q_bias/v_bias), use_learnable_pos_emb and use_mean_pooling.')

    result = backbone.load_state_dict(converted, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) <= set(allowed), result  # checked above
    print_log(f'Loaded {fmt} checkpoint {path}: {len(matched)} tensors loaded, {len(extras["ignored"])} ignored, '
              f'missing (kept at init): {allowed or "none"}', logger=logger)
    return {'path': path, 'format': fmt, 'loaded': matched, 'missing': allowed, 'ignored': extras['ignored'],
            'head': extras['head']}
