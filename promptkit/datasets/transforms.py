"""Image transforms mmcv-lite lacks: a random crop and the packer that turns a loaded image into model inputs.

The rest of the image pipelines is mmcv's (``LoadImageFromFile``, ``Resize``, ``CenterCrop``, ``RandomFlip``, ...).
Image datasets of promptkit build their pipelines in the ``promptkit`` scope, where these names resolve first to
promptkit's transforms and then to MMEngine's root registry, which holds mmcv's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS

__all__ = ['TRANSFORMS', 'RandomCrop', 'PackImageInputs']


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random ``crop_size`` window of ``results['img']`` (torchvision's ``RandomCrop`` without padding).

    Args:
        crop_size: Output size, an int for a square or (height, width).

    Raises:
        ValueError: When the image is smaller than the crop (resize first).
    """

    def __init__(self, crop_size: int | Sequence[int]) -> None:
        self.crop_size = _size(crop_size)

    def transform(self, results: dict) -> dict:
        img = results['img']
        (h, w), (ch, cw) = img.shape[:2], self.crop_size
        if h < ch or w < cw:
            raise ValueError(f'RandomCrop{self.crop_size}: image {results.get("img_path", "")} is {h}x{w}, smaller '
                             'than the crop; resize it first')
        y, x = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        results['img'] = img[y:y + ch, x:x + cw]
        results['img_shape'] = (ch, cw)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size})'


@TRANSFORMS.register_module()
class PackImageInputs(BaseTransform):
    """Pack ``results['img']`` (H, W, C) into ``inputs``, a (C, H, W) uint8 tensor, and a data sample.

    The data sample is mmaction2's ``ActionDataSample`` (``gt_label``, and later ``pred_score``/``pred_label``),
    which mmaction2's ``AccMetric`` reads; it holds nothing video-specific.

    Args:
        meta_keys: Keys of ``results`` copied into the data sample's metainfo when present.
            Defaults to ``('img_path', 'ori_shape', 'img_shape')``.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        from mmaction.structures import ActionDataSample

        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (C, H, W)
        sample = ActionDataSample()
        if 'gt_label' in results:
            sample.set_gt_label(int(results['gt_label']))
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
