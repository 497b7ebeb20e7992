"""``OpenCLIPClassifier``: an open_clip visual tower, frozen, with a prompt strategy and a (zero-shot) head."""
from __future__ import annotations

import os.path as osp
from copy import deepcopy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import CheckpointError, promptkit_host_state, read_state_dict, strip_module
from ..registry import MODELS
from ..weights import load_open_clip_tower
from .image_classifier import CLIP_MEAN, CLIP_STD, PromptedImageClassifier

__all__ = ['OpenCLIPClassifier']


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

        tower_state = promptkit_host_state(strip_module(read_state_dict(pretrained))) if pretrained else None
        clip = open_clip.create_model(model_name, pretrained=None if tower_state is not None else pretrained,
                                      **model_kwargs)
        if tower_state is not None:
            load_open_clip_tower(clip.visual, tower_state, pretrained)
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
