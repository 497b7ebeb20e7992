"""Image folders for text-to-image tuning: captioned folders (diffusers' ``metadata.jsonl``) and DreamBooth subjects.

Both yield ``dict(inputs=uint8 image (C, H, W), data_samples=dict(caption=...))``, what ``PromptedTextToImage``
reads; ``DreamBoothDataset`` with a class folder adds ``class_image`` and ``class_caption`` (prior preservation).
Images are resized (shorter side) and cropped to ``resolution`` with torchvision's transforms.
"""
from __future__ import annotations

import json
import os
import os.path as osp

import torch
from torch.utils.data import Dataset

from ..registry import DATASETS

__all__ = ['CaptionedImageFolder', 'DreamBoothDataset', 'list_images']

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')


def list_images(folder: str, what: str) -> list[str]:
    """The image files directly inside ``folder``, sorted; a missing or empty folder is an error naming ``what``."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{what}: {folder!r} is not a folder; set it in the config or with --cfg-options')
    files = sorted(osp.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f'{what}: {folder!r} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
    return files


class _ImageLoader:
    """Open, resize (shorter side), crop and optionally flip an image to uint8 (C, H, W) with torchvision."""

    def __init__(self, resolution: int, center_crop: bool = True, random_flip: bool = False,
                 mode: str = 'RGB') -> None:
        from torchvision.transforms import v2 as T
        self.mode = mode
        self.transform = T.Compose([
            T.Resize(resolution, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(resolution) if center_crop else T.RandomCrop(resolution),
            T.RandomHorizontalFlip() if random_flip else T.Identity(),
            T.PILToTensor()])

    def __call__(self, path: str) -> torch.Tensor:
        from PIL import Image
        with Image.open(path) as im:
            return self.transform(im.convert(self.mode))


@DATASETS.register_module()
class CaptionedImageFolder(Dataset):
    """A folder of images with captions in ``metadata.jsonl`` (the layout of diffusers' ``imagefolder`` data sets).

    Each line of ``metadata.jsonl`` is ``{"file_name": "0001.png", "text": "a caption"}``; file names are relative
    to ``data_root``.

    Args:
        data_root: The folder.
        metadata: The metadata file inside it. Defaults to ``'metadata.jsonl'``.
        image_column: Key of the file name. Defaults to ``'file_name'``.
        caption_column: Key of the caption. Defaults to ``'text'``.
        resolution: Output size (square). Defaults to 512.
        center_crop: Centre crop (else random crop). Defaults to True.
        random_flip: Random horizontal flips. Defaults to False.
        mode: PIL mode, ``'RGB'`` or ``'L'`` (one channel). Defaults to ``'RGB'``.
    """

    def __init__(self, data_root: str, metadata: str = 'metadata.jsonl', image_column: str = 'file_name',
                 caption_column: str = 'text', resolution: int = 512, center_crop: bool = True,
                 random_flip: bool = False, mode: str = 'RGB') -> None:
        path = osp.join(data_root, metadata)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} does not exist: a captioned image folder needs a {metadata} with one '
                                    f'{{"{image_column}": ..., "{caption_column}": ...}} line per image')
        self.items = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if image_column not in row or caption_column not in row:
                    raise KeyError(f'{path} line {n} lacks "{image_column}" or "{caption_column}": {line.strip()}')
                image = osp.join(data_root, row[image_column])
                if not osp.isfile(image):
                    raise FileNotFoundError(f'{path} line {n} names {row[image_column]!r}, which is not in '
                                            f'{data_root}')
                self.items.append((image, str(row[caption_column])))
        if not self.items:
            raise ValueError(f'{path} lists no images')
        self.load = _ImageLoader(resolution, center_crop, random_flip, mode)
        self.metainfo = dict(classes=None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        image, caption = self.items[i]
        return dict(inputs=self.load(image), data_samples=dict(caption=caption, img_path=image))


@DATASETS.register_module()
class DreamBoothDataset(Dataset):
    """A subject's reference images with one instance prompt (``'a photo of sks dog'``), and optionally class
    images with a class prompt (``'a photo of dog'``) for prior preservation, as in DreamBooth.

    The class images are generated beforehand by the frozen base model (e.g. ``tools/generate.py CONFIG none
    "a photo of dog" --num-images 200 --out-dir data/class_dog``, 100-200 of them as in diffusers' example).
    The length is the larger of the two counts; the smaller set cycles.

    Args:
        instance_data_root: Folder of the subject's images.
        instance_prompt: Caption of every subject image, with the identifier.
        class_data_root: Folder of class images. Defaults to None (no prior preservation).
        class_prompt: Caption of the class images; needed with ``class_data_root``.
        resolution: Output size (square). Defaults to 512.
        center_crop: Centre crop (else random crop). Defaults to True.
        random_flip: Random horizontal flips. Defaults to False.
    """

    def __init__(self, instance_data_root: str, instance_prompt: str, class_data_root: str | None = None,
                 class_prompt: str | None = None, resolution: int = 512, center_crop: bool = True,
                 random_flip: bool = False) -> None:
        self.instance = list_images(instance_data_root, 'DreamBoothDataset.instance_data_root')
        self.instance_prompt = instance_prompt
        self.classes = None
        if class_data_root is not None:
            if not class_prompt:
                raise ValueError('DreamBoothDataset: class_data_root is set but class_prompt is not; give the class '
                                 "prompt of the class images (e.g. 'a photo of dog')")
            self.classes = list_images(class_data_root, 'DreamBoothDataset.class_data_root (generate the class '
                                       'images with tools/generate.py first)')
        self.class_prompt = class_prompt
        self.load = _ImageLoader(resolution, center_crop, random_flip)
        self.metainfo = dict(classes=None)

    def __len__(self) -> int:
        return max(len(self.instance), len(self.classes or ()))

    def __getitem__(self, i: int) -> dict:
        path = self.instance[i % len(self.instance)]
        sample = dict(caption=self.instance_prompt, img_path=path)
        if self.classes is not None:
            sample.update(class_image=self.load(self.classes[i % len(self.classes)]), class_caption=self.class_prompt)
        return dict(inputs=self.load(path), data_samples=sample)
