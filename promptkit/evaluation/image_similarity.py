"""CLIP-I and DINO: how close generated images are to reference images (DreamBooth's subject-fidelity scores)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .images import OpenCLIPEncoder, TimmEncoder, encode, load_images, sample_field, to_unit_images

__all__ = ['ReferenceSimilarity', 'ClipImageSimilarity', 'DinoSimilarity']


class ReferenceSimilarity(BaseMetric):
    """Mean pairwise cosine similarity between the embeddings of generated and reference images.

    Args:
        encoder: The feature extractor (``encode_images`` returning unit-norm features).
        reference: The reference images: a folder, a list of files, or a tensor (N, C, H, W) in [0, 1].
        image_key: Data-sample field of the generated image.
        name: Key of the result.
        **kwargs: ``BaseMetric`` arguments.
    """

    default_prefix = 't2i'

    def __init__(self, encoder: Any, reference: Any, image_key: str = 'pred_image', name: str = 'similarity',
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder, self.image_key, self.name = encoder, image_key, name
        self.reference = encode(encoder, load_images(reference))  # (R, D), unit norm

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        feats = self.encoder.encode_images(to_unit_images([sample_field(s, self.image_key) for s in data_samples]))
        self.results.extend((feats @ self.reference.T).mean(1).cpu().tolist())  # (B, R) -> per image

    def compute_metrics(self, results: list) -> dict[str, float]:
        return {self.name: float(torch.tensor(results, dtype=torch.float64).mean())}


@METRICS.register_module()
class ClipImageSimilarity(ReferenceSimilarity):
    """CLIP-I: pairwise cosine of open_clip image embeddings of generated and reference images.

    Args:
        reference: Folder, list of files or tensor of the reference images.
        model: open_clip model name or a built ``CLIP`` module.
        pretrained: Path of the open_clip weights.
        device: Defaults to ``'cpu'``.
        **kwargs: ``ReferenceSimilarity`` / ``BaseMetric`` arguments.
    """

    def __init__(self, reference: Any, model: str | torch.nn.Module = 'ViT-B-32', pretrained: str | None = None,
                 device: str = 'cpu', **kwargs: Any) -> None:
        kwargs.setdefault('name', 'clip_i')
        super().__init__(OpenCLIPEncoder(model, pretrained, device), reference, **kwargs)


@METRICS.register_module()
class DinoSimilarity(ReferenceSimilarity):
    """DINO: pairwise cosine of DINO ViT-S/16 (timm) CLS features of generated and reference images.

    Args:
        reference: Folder, list of files or tensor of the reference images.
        model: timm model name (default ``'vit_small_patch16_224.dino'``) or a built timm module.
        checkpoint: Path of the timm weights.
        device: Defaults to ``'cpu'``.
        **kwargs: ``ReferenceSimilarity`` / ``BaseMetric`` arguments.
    """

    def __init__(self, reference: Any, model: str | torch.nn.Module = 'vit_small_patch16_224.dino',
                 checkpoint: str | None = None, device: str = 'cpu', **kwargs: Any) -> None:
        kwargs.setdefault('name', 'dino')
        super().__init__(TimmEncoder(model, checkpoint, device), reference, **kwargs)
