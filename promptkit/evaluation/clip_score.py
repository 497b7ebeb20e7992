"""CLIP-T: how well generated images match their captions (DreamBooth's text-fidelity score)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .images import OpenCLIPEncoder, sample_field, to_unit_images

__all__ = ['ClipScore']


@METRICS.register_module()
class ClipScore(BaseMetric):
    """Mean cosine similarity between the open_clip embeddings of each generated image and its caption.

    ``clip_t`` is the plain mean cosine (DreamBooth's CLIP-T); ``clip_score`` is torchmetrics' / the CLIPScore
    paper's ``100 · max(cos, 0)``.

    Args:
        model: open_clip model name or a built ``CLIP`` module.
        pretrained: Path of the open_clip weights (a name needs one; nothing is downloaded).
        image_key: Data-sample field of the generated image (tensor (C, H, W) in [0, 1] or uint8).
        text_key: Data-sample field of the caption.
        device: Where the tower runs. Defaults to ``'cpu'``.
        **kwargs: ``BaseMetric`` arguments (``prefix``, ``collect_device``).

    Examples:
        >>> metric = ClipScore(model='ViT-B-32', pretrained='checkpoints/open_clip_vit-b32.bin')
    """

    default_prefix = 't2i'

    def __init__(self, model: str | torch.nn.Module = 'ViT-B-32', pretrained: str | None = None,
                 image_key: str = 'pred_image', text_key: str = 'caption', device: str = 'cpu', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = OpenCLIPEncoder(model, pretrained, device)
        self.image_key, self.text_key = image_key, text_key

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        images = to_unit_images([sample_field(s, self.image_key) for s in data_samples])
        texts = [str(sample_field(s, self.text_key)) for s in data_samples]
        cos = (self.encoder.encode_images(images) * self.encoder.encode_texts(texts)).sum(-1)
        self.results.extend(cos.cpu().tolist())

    def compute_metrics(self, results: list) -> dict[str, float]:
        cos = torch.tensor(results, dtype=torch.float64)
        return dict(clip_t=float(cos.mean()), clip_score=float(100 * cos.clamp(min=0).mean()))
