"""A real, tiny image data set for the CPU demos: scikit-learn's 1,797 handwritten digits in VTAB-1k's layout.

The 8×8 images of ``sklearn.datasets.load_digits`` (ships inside scikit-learn, nothing is downloaded) are upscaled
(bilinear) to ``size``×``size``, written as 3-channel PNGs, and split once, deterministically (``seed``), into
VTAB-1k's lists: 800 train, 200 val and the other 797 test images::

    root/
      images/0000.png ...
      train800.txt, val200.txt, train800val200.txt, test.txt    "images/0000.png 0" per line
      classes.txt                                               zero, one, ..., nine
      .complete                                                 written last; JSON of the arguments

``DigitsDataset`` (``type='promptkit.DigitsDataset'``) writes the data on first use and can keep a subset of the
digits, relabelled 0..k-1 in the order given (the demo pre-trains on 0-4 and prompt-tunes on 5-9).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Sequence

import numpy as np

from ..registry import DATASETS
from .generated import ensure_generated, staged, write_marker
from .image_list import ImageListDataset

__all__ = ['DIGIT_NAMES', 'SPLITS', 'generate_digits_dataset', 'ensure_digits_dataset', 'DigitsDataset']

DIGIT_NAMES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
SPLITS = ('train800', 'val200', 'train800val200', 'test')
_FORMAT_VERSION = 1
_WHAT = 'the generated digits data set (promptkit.DigitsDataset)'


def _metadata(size: int, seed: int) -> dict[str, Any]:
    return dict(format_version=_FORMAT_VERSION, size=int(size), seed=int(seed))


def generate_digits_dataset(root: str, size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Write the digits under ``root`` (replacing the files this function owns), marker last.

    Args:
        root: Data set folder (created if missing).
        size: Side of the written images in px (the 8×8 originals are upscaled bilinearly).
        seed: Seed of the split permutation.

    Returns:
        The generation metadata (also in ``root/.complete``) with the split sizes.
    """
    import cv2
    from sklearn.datasets import load_digits

    if size < 8:
        raise ValueError(f'size must be at least 8, got {size}')
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    labels = digits.target.astype(int)
    order = np.random.default_rng(seed).permutation(len(labels))
    split_idx = dict(train800=order[:800], val200=order[800:1000], train800val200=order[:1000], test=order[1000:])

    with staged(root, ('images', 'classes.txt', *(f'{s}.txt' for s in SPLITS)), _WHAT) as staging:
        os.makedirs(osp.join(staging, 'images'))
        for i, img in enumerate(images):
            big = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(osp.join(staging, 'images', f'{i:04d}.png'), np.repeat(big[..., None], 3, axis=2))
        for split, idx in split_idx.items():
            with open(osp.join(staging, f'{split}.txt'), 'w') as f:
                f.writelines(f'images/{i:04d}.png {labels[i]}\n' for i in idx)
        with open(osp.join(staging, 'classes.txt'), 'w') as f:
            f.writelines(f'{name}\n' for name in DIGIT_NAMES)
    meta = _metadata(size, seed)
    write_marker(root, dict(meta, **{f'num_{s}': len(i) for s, i in split_idx.items()}))
    return meta


def ensure_digits_dataset(root: str, size: int = 32, seed: int = 0) -> str:
    """Generate the digits under ``root`` unless a complete copy with the same arguments is there; returns root."""
    return ensure_generated(root, _metadata(size, seed), lambda: generate_digits_dataset(root, size=size, seed=seed),
                            _WHAT)


@DATASETS.register_module()
class DigitsDataset(ImageListDataset):
    """scikit-learn's digits as a VTAB-1k-style ``ImageListDataset``, generated under ``data_root`` when absent.

    Args:
        split: ``'train800'``, ``'val200'``, ``'train800val200'`` or ``'test'``.
        data_root: Data set folder. Defaults to ``'data/digits'``.
        digits: The digits to keep, relabelled 0..k-1 in this order. Defaults to all ten.
        size: Side of the generated images. Defaults to 32.
        seed: Seed of the split. Defaults to 0.
        **kwargs: Arguments of ``ImageListDataset`` / ``BaseDataset`` (``pipeline``, ``test_mode``, ...).

    Examples:
        >>> ds = DigitsDataset(split='train800val200', digits=(5, 6, 7, 8, 9), pipeline=[
        ...     dict(type='LoadImageFromFile'), dict(type='PackImageInputs')])
        >>> ds.metainfo['classes']
        ('five', 'six', 'seven', 'eight', 'nine')
    """

    def __init__(self, split: str = 'train800val200', data_root: str = 'data/digits',
                 digits: Sequence[int] = tuple(range(10)), size: int = 32, seed: int = 0, **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        digits = tuple(int(d) for d in digits)
        if not digits or len(set(digits)) != len(digits) or not set(digits) <= set(range(10)):
            raise ValueError(f'digits must be distinct digits 0..9, got {digits}')
        self.digits = digits
        data_root = osp.abspath(data_root)
        ensure_digits_dataset(data_root, size=size, seed=seed)
        super().__init__(ann_file=f'{split}.txt', data_root=data_root, classes=[DIGIT_NAMES[d] for d in digits],
                         **kwargs)

    def load_data_list(self) -> list[dict]:
        relabel = {d: i for i, d in enumerate(self.digits)}
        names = self._metainfo['classes']
        self._metainfo['classes'] = DIGIT_NAMES  # the lists carry the original labels 0..9
        try:
            data = super().load_data_list()
        finally:
            self._metainfo['classes'] = names
        return [dict(item, gt_label=relabel[item['gt_label']]) for item in data if item['gt_label'] in relabel]
