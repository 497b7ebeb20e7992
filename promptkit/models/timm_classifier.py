"""``TimmClassifier``: a timm ViT classifier, frozen, with a prompt strategy and its own trainable head."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..registry import MODELS
from ..weights import load_timm_weights
from .image_classifier import PromptedImageClassifier

__all__ = ['TimmClassifier']


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
