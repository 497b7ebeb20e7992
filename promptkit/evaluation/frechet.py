"""Fréchet distance between Gaussian fits of two feature sets (FID's formula, in any feature extractor)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .images import build_encoder, encode, load_images, sample_field, to_unit_images

__all__ = ['frechet_distance', 'FrechetDistance']


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of two feature sets (N, D), (M, D), in float64.

    Written by hand (torchmetrics, which has FID, is not a dependency). ``Tr (S_a S_b)^(1/2)`` is the sum of the
    square roots of the eigenvalues of the symmetric ``S_a^(1/2) S_b S_a^(1/2)`` (same spectrum), computed with
    ``eigh``: exact for singular covariances too (pixels that never change, fewer samples than dimensions), where
    ``scipy.linalg.sqrtm(S_a @ S_b)`` warns and needs pytorch-fid's regularisation.
    """
    a64, b64 = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    if a64.ndim != 2 or b64.ndim != 2 or a64.shape[1] != b64.shape[1] or min(len(a64), len(b64)) < 2:
        raise ValueError(f'frechet_distance needs two (N>=2, D) feature sets of equal D, got {a64.shape} and '
                         f'{b64.shape}')
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a64, rowvar=False)), np.atleast_2d(np.cov(b64, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ cov_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


@METRICS.register_module()
class FrechetDistance(BaseMetric):
    """Fréchet distance between generated images and reference images in a given feature extractor.

    Args:
        reference: Folder, list of files or tensor (N, C, H, W) in [0, 1] of the real images.
        feature_extractor: ``'pixels'`` (default), a callable / encoder, or ``dict(type='OpenCLIPEncoder' |
            'TimmEncoder' | 'PixelEncoder', ...)`` (weights from paths).
        image_key: Data-sample field of the generated image.
        name: Key of the result. Defaults to ``'fd'``.
        **kwargs: ``BaseMetric`` arguments.
    """

    default_prefix = 't2i'

    def __init__(self, reference: Any, feature_extractor: Any = 'pixels', image_key: str = 'pred_image',
                 name: str = 'fd', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder, self.image_key, self.name = build_encoder(feature_extractor), image_key, name
        self.reference = encode(self.encoder, load_images(reference)).cpu()

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        feats = encode(self.encoder, to_unit_images([sample_field(s, self.image_key) for s in data_samples]))
        self.results.extend(feats.cpu().unbind(0))

    def compute_metrics(self, results: list) -> dict[str, float]:
        return {self.name: frechet_distance(torch.stack(results), self.reference)}
