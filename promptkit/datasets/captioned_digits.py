"""Captioned digits for the text-to-image demo: scikit-learn's real 8×8 scans with "a photo of the digit seven".

The 1,797 images of ``sklearn.datasets.load_digits`` (shipped inside scikit-learn, nothing is downloaded) are split
once, deterministically (``seed``), into ``'train'`` (80 %) and ``'test'`` (20 %). ``rotate`` turns every image by
that many quarter turns counter-clockwise (``torch.rot90`` / ``np.rot90``: exact at 8×8, no interpolation), which
gives the demo's new domain: the same captions, rotated digits. Everything is made in memory; no file is written.

:func:`load_captioned_digits` returns plain tensors (what the demo's loops use); :class:`CaptionedDigitsDataset`
(``type='promptkit.CaptionedDigitsDataset'``) is the same data as an MMEngine data set whose items are what
``promptkit.PromptedTextToImage`` trains on: ``inputs`` (uint8 (1, 8, 8)) and ``data_samples`` (``caption``,
``gt_label``, ``rotate``); no pipeline is needed.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from ..registry import DATASETS
from .digits import DIGIT_NAMES

__all__ = ['digit_caption', 'CAPTION_TEMPLATE', 'load_captioned_digits', 'CaptionedDigitsDataset']

CAPTION_TEMPLATE = 'a photo of the digit {}'
_SPLITS = ('train', 'test', 'all')


def digit_caption(digit: int, template: str = CAPTION_TEMPLATE) -> str:
    """The caption of a digit: ``digit_caption(7) == 'a photo of the digit seven'``."""
    return template.format(DIGIT_NAMES[int(digit)])


def _split_indices(n: int, split: str, seed: int, test_fraction: float) -> np.ndarray:
    if split not in _SPLITS:
        raise ValueError(f'split must be one of {_SPLITS}, got {split!r}')
    order = np.random.default_rng(seed).permutation(n)
    num_test = int(round(n * test_fraction))
    return dict(train=order[num_test:], test=order[:num_test], all=order)[split]


def load_captioned_digits(split: str = 'train', rotate: int = 0, digits: Sequence[int] = tuple(range(10)),
                          seed: int = 0, test_fraction: float = 0.2,
                          template: str = CAPTION_TEMPLATE) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The digits of one split as tensors.

    Args:
        split: ``'train'``, ``'test'`` or ``'all'``.
        rotate: Quarter turns counter-clockwise (0 = the originals, 1 = the demo's rotated domain).
        digits: The digits to keep (labels stay 0..9).
        seed: Seed of the split permutation. Defaults to 0.
        test_fraction: Share of the test split. Defaults to 0.2 (359 test, 1,438 train images).
        template: Caption template with one ``{}`` for the digit's name.

    Returns:
        ``images`` (N, 1, 8, 8) float in [0, 1], ``labels`` (N,) int64, ``captions`` (N strings).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    idx = _split_indices(len(data.target), split, seed, test_fraction)
    keep = np.isin(data.target[idx], np.asarray(list(digits), dtype=int))
    idx = idx[keep]
    images = torch.from_numpy(data.images[idx] / 16.0).float()[:, None]  # (N, 1, 8, 8), 0..16 -> [0, 1]
    images = torch.rot90(images, k=int(rotate) % 4, dims=(-2, -1))
    labels = torch.from_numpy(data.target[idx].astype(np.int64))
    return images, labels, [digit_caption(d, template) for d in labels.tolist()]


@DATASETS.register_module()
class CaptionedDigitsDataset(BaseDataset):
    """scikit-learn's digits with captions, in memory, optionally rotated (the demo's new domain).

    Args:
        split: ``'train'``, ``'test'`` or ``'all'``.
        rotate: Quarter turns counter-clockwise. Defaults to 0.
        digits: The digits to keep. Defaults to all ten.
        seed: Seed of the split. Defaults to 0.
        template: Caption template. Defaults to ``'a photo of the digit {}'``.
        **kwargs: Arguments of ``BaseDataset`` (``pipeline``, ``test_mode``, ``indices``, ...).

    Examples:
        >>> ds = CaptionedDigitsDataset(split='test', rotate=1)
        >>> ds[0]['data_samples']['caption'], ds[0]['inputs'].shape
        ('a photo of the digit six', torch.Size([1, 8, 8]))
    """

    def __init__(self, split: str = 'train', rotate: int = 0, digits: Sequence[int] = tuple(range(10)),
                 seed: int = 0, template: str = CAPTION_TEMPLATE, **kwargs: Any) -> None:
        self.split, self.rotate, self.digits, self.seed, self.template = split, int(rotate), tuple(digits), seed, \
            template
        _split_indices(1, split, seed, 0.2)  # validates split before BaseDataset loads
        kwargs.setdefault('metainfo', dict(classes=DIGIT_NAMES))
        super().__init__(**kwargs)

    def prepare_data(self, idx: int) -> dict:
        """The item in the wrapper's format: ``BaseDataset``'s ``sample_idx`` moves into ``data_samples``."""
        info = self.get_data_info(idx)
        info['data_samples'] = dict(info['data_samples'], sample_idx=info.pop('sample_idx'))
        return self.pipeline(info)

    def load_data_list(self) -> list[dict]:
        images, labels, captions = load_captioned_digits(self.split, self.rotate, self.digits, self.seed,
                                                         template=self.template)
        pixels = (images * 255).round().to(torch.uint8)  # (N, 1, 8, 8)
        return [dict(inputs=pixels[i], data_samples=dict(caption=captions[i], gt_label=int(labels[i]),
                                                          rotate=self.rotate)) for i in range(len(labels))]
