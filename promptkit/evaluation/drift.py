"""Drift: how much tuning changed what the model makes for captions it was not tuned on.

PEFT's image-generation benchmark (``method_comparison/image-gen``) measures it as 1 − cosine between the features
of the base model's and the tuned model's images for the same unrelated prompts and seeds. Here each data sample
carries both images: the tuned one and the base one (the same noise, prompts disabled).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .images import build_encoder, encode, sample_field, to_unit_images

__all__ = ['drift', 'Drift']


def drift(tuned: torch.Tensor, base: torch.Tensor, feature_extractor: Any = 'pixels') -> torch.Tensor:
    """Per-pair ``1 - cos(f(tuned_i), f(base_i))`` for two aligned batches of images in [0, 1]; (N,)."""
    encoder = build_encoder(feature_extractor)
    a, b = encode(encoder, to_unit_images(tuned)), encode(encoder, to_unit_images(base))
    if a.shape != b.shape:
        raise ValueError(f'drift needs aligned batches, got {tuple(a.shape)} and {tuple(b.shape)} features')
    return 1 - F.cosine_similarity(a.double(), b.double(), dim=-1)


@METRICS.register_module()
class Drift(BaseMetric):
    """Mean ``1 - cos`` between the features of tuned and base images of the same caption and noise.

    Args:
        feature_extractor: ``'pixels'`` (default, the demo's choice at 8×8), a callable / encoder or a dict
            (``dict(type='TimmEncoder', checkpoint=...)`` gives PEFT's DINO variant).
        image_key: Data-sample field of the tuned model's image.
        base_key: Data-sample field of the base model's image.
        **kwargs: ``BaseMetric`` arguments.
    """

    default_prefix = 't2i'

    def __init__(self, feature_extractor: Any = 'pixels', image_key: str = 'pred_image',
                 base_key: str = 'base_image', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder, self.image_key, self.base_key = build_encoder(feature_extractor), image_key, base_key

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        tuned = [sample_field(s, self.image_key) for s in data_samples]
        base = [sample_field(s, self.base_key) for s in data_samples]
        self.results.extend(drift(tuned, base, self.encoder).tolist())

    def compute_metrics(self, results: list) -> dict[str, float]:
        return dict(drift=float(torch.tensor(results, dtype=torch.float64).mean()))
