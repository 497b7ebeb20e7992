"""The text-to-image demo's judge: classifiers trained on scikit-learn's real 8×8 digits.

- content: a logistic regression over the 64 pixels, trained on the upright ``'train'`` split of
  :func:`promptkit.datasets.load_captioned_digits`; an image generated in a domain turned by ``rotate`` quarter
  turns is turned back first, then judged;
- domain: a logistic regression telling upright from rotated digits (trained on the same images, both ways).

``DigitsJudgeMetric`` reports ``content_accuracy`` (the judged digit is the captioned one), ``domain_rate`` (the
share judged to be in the requested domain) and ``fd`` (Fréchet distance in pixels to the real test digits of that
domain).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..datasets.captioned_digits import load_captioned_digits
from ..registry import METRICS
from .frechet import frechet_distance
from .images import sample_field, to_unit_images

__all__ = ['DigitsJudge', 'DigitsJudgeMetric']


class DigitsJudge:
    """Digit and orientation classifiers fitted on the real digits (seconds on a CPU).

    Args:
        rotate: The quarter turns that define the rotated domain. Defaults to 1.
        seed: Seed of the train/test split (the demo's split). Defaults to 0.

    Examples:
        >>> judge = DigitsJudge()
        >>> images, labels, _ = load_captioned_digits('test')
        >>> judge.accuracy(images, labels) > 0.95
        True
    """

    def __init__(self, rotate: int = 1, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression

        self.rotate, self.seed = int(rotate), seed
        upright, labels, _ = load_captioned_digits('train', seed=seed)
        turned, _, _ = load_captioned_digits('train', rotate=rotate, seed=seed)
        x = upright.flatten(1).numpy()
        self._digit = LogisticRegression(max_iter=5000, C=1.0).fit(x, labels.numpy())
        xd = np.concatenate([x, turned.flatten(1).numpy()])
        self._domain = LogisticRegression(max_iter=5000, C=1.0).fit(xd, np.r_[np.zeros(len(x)), np.ones(len(x))])

    @staticmethod
    def _pixels(images: Any) -> np.ndarray:
        x = to_unit_images(images)
        if tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f'the digits judge takes (N, 1, 8, 8) images, got {tuple(x.shape)}')
        return x.flatten(1).cpu().numpy()

    def predict_digit(self, images: Any, rotate: int = 0) -> torch.Tensor:
        """The judged digit (N,) of images in a domain turned by ``rotate`` quarter turns (turned back first)."""
        x = torch.rot90(to_unit_images(images), k=-int(rotate) % 4, dims=(-2, -1))
        return torch.from_numpy(self._digit.predict(self._pixels(x)).astype(np.int64))

    def predict_rotated(self, images: Any) -> torch.Tensor:
        """Whether each image (N,) looks rotated by ``self.rotate`` quarter turns (bool)."""
        return torch.from_numpy(self._domain.predict(self._pixels(images)) > 0.5)

    def accuracy(self, images: Any, labels: torch.Tensor, rotate: int = 0) -> float:
        """Share of images judged to show ``labels``."""
        return float((self.predict_digit(images, rotate) == torch.as_tensor(labels)).double().mean())


@METRICS.register_module()
class DigitsJudgeMetric(BaseMetric):
    """Content accuracy, domain rate and pixel FD of generated 8×8 digits.

    Args:
        rotate: The domain the images were generated for (quarter turns; 0 = upright, 1 = the demo's rotated one).
        judge: A fitted :class:`DigitsJudge`. Defaults to a new one (fitted on the demo's split).
        image_key: Data-sample field of the generated image ((1, 8, 8) in [0, 1]).
        label_key: Data-sample field of the captioned digit.
        **kwargs: ``BaseMetric`` arguments.
    """

    default_prefix = 'judge'

    def __init__(self, rotate: int = 1, judge: DigitsJudge | None = None, image_key: str = 'pred_image',
                 label_key: str = 'gt_label', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rotate = int(rotate)
        self.judge = judge or DigitsJudge(rotate=rotate if rotate else 1)
        self.image_key, self.label_key = image_key, label_key
        self.reference = load_captioned_digits('test', rotate=self.rotate, seed=self.judge.seed)[0]

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        images = to_unit_images([sample_field(s, self.image_key) for s in data_samples])
        labels = torch.as_tensor([int(sample_field(s, self.label_key)) for s in data_samples])
        digit = self.judge.predict_digit(images, self.rotate)
        turned = self.judge.predict_rotated(images)
        in_domain = turned if self.rotate else ~turned
        for i in range(len(labels)):
            self.results.append((bool(digit[i] == labels[i]), bool(in_domain[i]), images[i].flatten()))

    def compute_metrics(self, results: list) -> dict[str, float]:
        content = np.mean([r[0] for r in results])
        domain = np.mean([r[1] for r in results])
        feats = torch.stack([r[2] for r in results])
        return dict(content_accuracy=float(content), domain_rate=float(domain),
                    fd=frechet_distance(feats, self.reference.flatten(1)) if len(results) > 1 else float('nan'))
