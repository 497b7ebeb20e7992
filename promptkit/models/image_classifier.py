"""The base of the prompted image classifiers (MMEngine models): ``TimmClassifier`` (timm_classifier.py) and
``OpenCLIPClassifier`` (open_clip_classifier.py).

Both wrappers freeze the host in ``__init__`` (before any DDP wrapping), attach the prompt strategy with
``attach_prompts``, train prompts + head, and answer MMEngine's ``forward(inputs, data_samples, mode)``:
``'tensor'`` gives logits, ``'loss'`` softmax cross-entropy, ``'predict'`` mmaction2 ``ActionDataSample``s with
``pred_score``/``pred_label`` (read by mmaction2's ``AccMetric``). Weights come from local files only.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from .prompted_backbone import PromptedWrapperMixin, attach_prompts

__all__ = ['PromptedImageClassifier', 'IMAGENET_MEAN', 'IMAGENET_STD', 'CLIP_MEAN', 'CLIP_STD']

#: ImageNet mean/std in 0..255 RGB, as VPT/VAPT normalise (docs/methods.md §3).
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
#: CLIP's (open_clip's ``OPENAI_DATASET_MEAN/STD``) in 0..255 RGB.
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)

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
