"""Prompted image classifiers as MMEngine models: a timm ViT, or an open_clip visual tower with a zero-shot head.

Both wrappers freeze the host in ``__init__`` (before any DDP wrapping), attach the prompt strategy with
``attach_prompts``, train prompts + head, and answer MMEngine's ``forward(inputs, data_samples, mode)``:
``'tensor'`` gives logits, ``'loss'`` softmax cross-entropy, ``'predict'`` mmaction2 ``ActionDataSample``s with
``pred_score``/``pred_label`` (read by mmaction2's ``AccMetric``). Weights come from local files only.
"""
from __future__ import annotations

import math
import os.path as osp
from copy import deepcopy
from typing import Collection, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from ..checkpoint import CheckpointError, read_state_dict
from ..registry import MODELS
from .prompted_backbone import PromptedWrapperMixin, attach_prompts

__all__ = ['PromptedImageClassifier', 'TimmClassifier', 'OpenCLIPClassifier', 'load_timm_weights']

#: ImageNet mean/std in 0..255 RGB, as VPT/VAPT normalise (docs/methods.md §3).
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
#: CLIP's (open_clip's ``OPENAI_DATASET_MEAN/STD``) in 0..255 RGB.
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)
#: The prefix under which the wrappers hold their host: a checkpoint of a promptkit run has keys ``backbone.*``.
_PREFIX = 'backbone.'


def _strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``module.`` prefix DDP-wrapped checkpoints carry."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _promptkit_backbone(state: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """The host tensors of a promptkit classifier checkpoint (keys ``backbone.*``), or None for another format.

    The prompts, head and buffers of that run (``prompt.*``, ``head.*``, ...) are not part of the base.
    """
    if not any(k.startswith(_PREFIX) for k in state):
        return None
    return {k[len(_PREFIX):]: v for k, v in state.items() if k.startswith(_PREFIX)}


def _check_fit(path: str, what: str, own: dict[str, Tensor], state: dict[str, Tensor],
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

    state = _strip_module(read_state_dict(path))
    state = _promptkit_backbone(state) or state
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
    _check_fit(path, f'timm {type(model).__name__}', own, state, may_miss=head_keys)
    model.load_state_dict(state, strict=False)
    return dict(path=path, loaded=len(state), head=head)


class PromptedImageClassifier(PromptedWrapperMixin, BaseModel):
    """Base of the image wrappers: freezing, the trainable table, loss, predictions and ``host_eval``.

    Subclasses build ``self.backbone`` (the host, frozen by ``_attach``) and implement ``forward_logits``.

    Args:
        label_smoothing: Label smoothing of the cross-entropy loss. Defaults to 0.
        data_preprocessor: MMEngine data preprocessor config; keys missing from it take the subclass defaults
            (``ImgDataPreprocessor``, BGR to RGB, the host's mean/std). Defaults to None (all defaults).
        init_cfg: MMEngine init config. Defaults to None.
    """

    default_mean: tuple[float, ...] = IMAGENET_MEAN
    default_std: tuple[float, ...] = IMAGENET_STD

    def __init__(self, label_smoothing: float = 0.0, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None) -> None:
        if not isinstance(data_preprocessor, nn.Module):
            # mmcv's LoadImageFromFile reads BGR; the mean/std are RGB.
            data_preprocessor = dict(dict(type='ImgDataPreprocessor', mean=self.default_mean, std=self.default_std,
                                          bgr_to_rgb=True), **(data_preprocessor or {}))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.label_smoothing = label_smoothing
        self.full_finetune = False

    def _attach(self, prompt: dict | None, train_roles: Sequence[str], full_finetune: bool) -> None:
        """Attach the strategy to ``self.backbone`` and freeze it (all of it unless ``full_finetune``)."""
        self.full_finetune = full_finetune
        self.host, self.prompt, self.train_roles = attach_prompts(self.backbone, prompt, train_roles, full_finetune)

    def forward_logits(self, inputs: Tensor) -> Tensor:
        """Logits (B, K) of normalised images (B, 3, H, W)."""
        raise NotImplementedError

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = 'tensor'):
        """MMEngine's entry point.

        Args:
            inputs: Normalised images (B, 3, H, W), as the data preprocessor returns them.
            data_samples: ``ActionDataSample``s with ``gt_label`` (needed for ``'loss'``).
            mode: ``'tensor'`` (logits), ``'loss'`` (``dict(loss=...)``) or ``'predict'`` (the data samples with
                ``pred_score`` = softmax and ``pred_label``).
        """
        logits = self.forward_logits(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            if not data_samples:
                raise ValueError("mode='loss' needs data_samples with gt_label")
            labels = torch.cat([s.gt_label for s in data_samples]).to(logits.device)
            return dict(loss=F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing))
        if mode == 'predict':
            from mmaction.structures import ActionDataSample
            if data_samples is None:
                data_samples = [ActionDataSample() for _ in range(len(logits))]
            scores = logits.detach().float().softmax(dim=-1)
            for sample, score in zip(data_samples, scores):
                sample.set_pred_score(score)
                sample.set_pred_label(score.argmax().item())
            return data_samples
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def init_weights(self) -> None:
        """Nothing to do: weights are loaded or initialised at build time (timm's ``init_weights`` would reset a
        loaded ViT, so the Runner's call must not reach it)."""
        self._is_init = True


@MODELS.register_module()
class TimmClassifier(PromptedImageClassifier):
    """A timm ViT classifier, frozen, with a prompt strategy; trains prompts + the new head (``model.head``).

    Args:
        model_name: A timm architecture (``'vit_base_patch16_224'``); hub names (``'hf-hub:...'``) are refused.
        num_classes: Classes K; the head is timm's own, reset to K outputs.
        pretrained: Local weights for the model (see :func:`load_timm_weights`). Defaults to None (timm's init).
        prompt: Prompt strategy config (``PROMPTS``); None for a linear probe / full fine-tuning. Defaults to None.
        load_head: Load a checkpoint's head when its class count matches; False for a new task with the same
            count. Defaults to True.
        head_init: Initialisation of a head not loaded from ``pretrained``: ``'timm'`` (trunc-normal 0.02, zero
            bias) or ``'vapt'``, the official VPT/VAPT code's (Kaiming-normal with fan-out, bias -log 99).
            Defaults to ``'timm'``.
        train_roles: Host parameter roles trained besides the strategy's choice (e.g. ``('head_norm',)``).
            Defaults to ().
        full_finetune: Train every parameter (the full fine-tuning baseline). Defaults to False.
        label_smoothing: See :class:`PromptedImageClassifier`. Defaults to 0.
        expected_trainable: If given, the trainable parameter count the model must end up with. Defaults to None.
        data_preprocessor: See :class:`PromptedImageClassifier` (ImageNet mean/std). Defaults to None.
        init_cfg: MMEngine init config. Defaults to None.
        **model_kwargs: Passed to ``timm.create_model`` (``img_size``, ``patch_size``, ``depth``, ...).

    Examples:
        >>> model = dict(type='promptkit.TimmClassifier', model_name='vit_base_patch16_224', num_classes=100,
        ...              pretrained='checkpoints/ViT-B_16.npz', prompt=dict(type='AdaptivePrompt', num_tokens=10))
    """

    def __init__(self, model_name: str, num_classes: int, pretrained: str | None = None, prompt: dict | None = None,
                 load_head: bool = True, head_init: str = 'timm', train_roles: Sequence[str] = (),
                 full_finetune: bool = False, label_smoothing: float = 0.0, expected_trainable: int | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None, **model_kwargs) -> None:
        import timm
        if head_init not in ('timm', 'vapt'):
            raise ValueError(f"head_init must be 'timm' or 'vapt', got {head_init!r}")

        super().__init__(label_smoothing, data_preprocessor, init_cfg)
        if model_name.startswith(('hf-hub:', 'hf_hub:')):
            raise ValueError(f'{model_name!r} is a hub name; promptkit never downloads: give the timm architecture '
                             "name and point pretrained= at a local weights file")
        self.backbone = timm.create_model(model_name, pretrained=False, num_classes=num_classes, **model_kwargs)
        self.pretrained = pretrained
        head_loaded = False
        if pretrained:
            report = load_timm_weights(self.backbone, pretrained, load_head=load_head)
            print_log(f'promptkit: loaded {report["loaded"]} tensors from {pretrained} into {model_name}; '
                      f'head {report["head"]}', logger='current')
            head_loaded = report['head'].startswith('loaded')
        head = self.backbone.get_classifier()
        if head_init == 'vapt' and not head_loaded and isinstance(head, nn.Linear):
            nn.init.kaiming_normal_(head.weight, mode='fan_out')
            nn.init.constant_(head.bias, -math.log((1 - 0.01) / 0.01))  # VPT's "special bias": -log 99
        self._attach(prompt, train_roles, full_finetune)
        self.backbone.get_classifier().requires_grad_(True)  # the head lives inside the timm model
        self._report(expected_trainable)

    def forward_logits(self, inputs: Tensor) -> Tensor:
        return self.backbone(inputs)

    def dummy_inputs(self, batch_size: int = 1) -> Tensor:
        """Random normalised images (B, C, H, W) at the ViT's input size (for cost measurement)."""
        embed = self.backbone.patch_embed
        return torch.randn(batch_size, embed.proj.in_channels, *embed.img_size, device=embed.proj.weight.device)


@MODELS.register_module()
class OpenCLIPClassifier(PromptedImageClassifier):
    """An open_clip visual tower, frozen, with a prompt strategy and a trainable head; the text tower is dropped.

    Heads:

    - ``'zero_shot'``: W (D, K) from ``open_clip.build_zero_shot_classifier`` with the class names and templates,
      logits = exp(logit_scale) · normalize(features) @ W, as open_clip's zero-shot evaluation computes them. The
      text tower and tokenizer are used once, here, and then released (only ``visual`` is kept), so training holds
      the image tower alone. W is trained; the logit scale stays fixed.
    - ``'linear'``: a ``Linear(D, K)`` on the tower's output (trunc-normal 0.02, zero bias).

    Args:
        model_name: An open_clip architecture (``'ViT-B-16'``) or ``'local-dir:/path'``; ``'hf-hub:'`` is refused.
        num_classes: Classes K.
        pretrained: A local file: an open_clip CLIP checkpoint (read by ``open_clip.create_model``), or a promptkit
            classifier checkpoint whose ``backbone.*`` fill the visual tower (e.g. a full fine-tuning run).
            Defaults to None (random init). Tags such as ``'openai'`` would download and are refused.
        prompt: Prompt strategy config (``PROMPTS``); None for a linear probe. Defaults to None.
        head: ``'zero_shot'`` or ``'linear'``. Defaults to ``'zero_shot'``.
        classnames: For the zero-shot head: K class names, or a text file with one per line.
        templates: Prompt templates with ``{}`` for the class name. Defaults to ``('a photo of a {}.',)``.
        model_cfg: An open_clip model config (the content of a ``model_configs/*.json``) registered as
            ``model_name`` first, for architectures open_clip does not ship. Defaults to None.
        train_roles: Host parameter roles to train besides the strategy's (``('head_norm',)`` is ``ln_post``).
            Defaults to ().
        full_finetune: Train every tower parameter. Defaults to False.
        label_smoothing: See :class:`PromptedImageClassifier`. Defaults to 0.
        expected_trainable: If given, the trainable parameter count the model must end up with. Defaults to None.
        data_preprocessor: See :class:`PromptedImageClassifier` (CLIP mean/std). Defaults to None.
        init_cfg: MMEngine init config. Defaults to None.
        **model_kwargs: Passed to ``open_clip.create_model`` (``force_image_size``, ``precision``, ...).

    Examples:
        >>> model = dict(type='promptkit.OpenCLIPClassifier', model_name='ViT-B-16', num_classes=100,
        ...              pretrained='checkpoints/open_clip_vit_b16.safetensors', classnames='classnames.txt',
        ...              prompt=dict(type='AdaptivePrompt', num_tokens=10))
    """

    default_mean, default_std = CLIP_MEAN, CLIP_STD

    def __init__(self, model_name: str, num_classes: int, pretrained: str | None = None, prompt: dict | None = None,
                 head: str = 'zero_shot', classnames: str | Sequence[str] | None = None,
                 templates: Sequence[str] = ('a photo of a {}.',), model_cfg: dict | None = None,
                 train_roles: Sequence[str] = (), full_finetune: bool = False, label_smoothing: float = 0.0,
                 expected_trainable: int | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None, **model_kwargs) -> None:
        import open_clip

        super().__init__(label_smoothing, data_preprocessor, init_cfg)
        if head not in ('zero_shot', 'linear'):
            raise ValueError(f"head must be 'zero_shot' or 'linear', got {head!r}")
        if model_name.startswith('hf-hub:'):
            raise ValueError(f'{model_name!r} is a hub name; promptkit never downloads: use an open_clip '
                             "architecture name or 'local-dir:/path', and pretrained= a local file")
        if pretrained is not None and not osp.isfile(pretrained):
            raise CheckpointError(f'pretrained={pretrained!r} is not a file; open_clip tags (e.g. "openai") would '
                                  'download, which promptkit never does: point it at a local checkpoint')
        if model_cfg is not None:
            open_clip.factory._MODEL_CONFIGS[model_name] = deepcopy(dict(model_cfg))
        names = None
        if head == 'zero_shot':
            from ..datasets.image_list import read_classes
            names = read_classes(classnames)
            if names is None or len(names) != num_classes:
                raise ValueError(f'the zero-shot head needs num_classes={num_classes} classnames, got '
                                 f'{None if names is None else len(names)}')

        tower_state = _promptkit_backbone(_strip_module(read_state_dict(pretrained))) if pretrained else None
        clip = open_clip.create_model(model_name, pretrained=None if tower_state is not None else pretrained,
                                      **model_kwargs)
        if tower_state is not None:
            self._load_tower(clip.visual, tower_state, pretrained)
        self.pretrained, self.head_type = pretrained, head
        self.backbone = clip.visual
        dim = self.backbone.output_dim
        if head == 'zero_shot':
            tokenizer = open_clip.get_tokenizer(model_name)
            weight = open_clip.build_zero_shot_classifier(clip, tokenizer, names, list(templates),
                                                          num_classes_per_batch=10, device='cpu', use_tqdm=False)
            self.head = nn.Linear(dim, num_classes, bias=False)
            with torch.no_grad():
                self.head.weight.copy_(weight.T)  # (K, D)
            self.register_buffer('logit_scale', clip.logit_scale.detach().exp().reshape(()).clone())
        else:
            self.head = nn.Linear(dim, num_classes)
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
            self.logit_scale = None
        del clip  # the text tower, token embedding and text norm go with it
        self._attach(prompt, train_roles, full_finetune)
        self._report(expected_trainable)

    @staticmethod
    def _load_tower(visual: nn.Module, state: dict[str, Tensor], path: str) -> None:
        _check_fit(path, 'the open_clip visual tower', visual.state_dict(), state)
        visual.load_state_dict(state)
        print_log(f'promptkit: loaded {len(state)} visual-tower tensors from {path}', logger='current')

    def forward_logits(self, inputs: Tensor) -> Tensor:
        features = self.backbone(inputs)
        if isinstance(features, tuple):  # output_tokens=True: (pooled, tokens)
            features = features[0]
        if self.logit_scale is None:
            return self.head(features)
        return self.logit_scale * self.head(F.normalize(features, dim=-1))

    def dummy_inputs(self, batch_size: int = 1) -> Tensor:
        """Random normalised images (B, C, H, W) at the tower's input size (for cost measurement)."""
        conv = self.backbone.conv1
        return torch.randn(batch_size, conv.in_channels, *self.backbone.image_size, device=conv.weight.device)
