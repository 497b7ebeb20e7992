"""Image classification data sets: VTAB-1k-style lists, VPT's FGVC json splits, and class folders.

Layouts::

    vtab-1k/<task>/                    ImageListDataset(data_root='vtab-1k/<task>', ann_file='train800val200.txt')
      train800.txt, val200.txt, train800val200.txt, test.txt     "relative/path.jpg label" per line
      images/...                       paths in the lists are relative to data_root (or to data_prefix.img_path)
    CUB_200_2011/                      ImageListDataset(ann_file='train.json', data_prefix=dict(img_path='images'))
      train.json, val.json, test.json  VPT's splits: {"relative/path.jpg": label, ...}
      images/<class>/*.jpg
    <fgvc>/train/<class>/*.jpg         ImageFolderDataset(data_root='<fgvc>', data_prefix=dict(img_path='train'))

Pipelines are built in the ``promptkit`` scope: ``PackImageInputs`` and ``RandomCrop`` are promptkit's, the other
transforms mmcv's (``LoadImageFromFile``, ``Resize``, ``CenterCrop``, ``RandomFlip``, ...); another library's
transform needs its scope prefix (``'mmaction.X'``). A listed image that is missing fails when it is loaded, with
mmcv's ``FileNotFoundError`` naming the file.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Sequence

from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope

from ..registry import DATASETS
from . import transforms  # noqa: F401  (registers PackImageInputs, RandomCrop)

__all__ = ['ImageListDataset', 'ImageFolderDataset', 'read_classes']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def read_classes(classes: str | Sequence[str] | None, data_root: str = '') -> tuple[str, ...] | None:
    """Class names from a sequence, or from a text file (one name per line; relative to ``data_root``)."""
    if classes is None:
        return None
    if isinstance(classes, str):
        path = classes if osp.isabs(classes) or not data_root else osp.join(data_root, classes)
        with open(path) as f:
            return tuple(line.strip() for line in f if line.strip())
    return tuple(classes)


class _ImageDataset(BaseDataset):
    """Shared by the image data sets: class names in ``metainfo`` and pipelines built in promptkit's scope."""

    def __init__(self, classes: str | Sequence[str] | None = None, data_root: str = '', **kwargs: Any) -> None:
        names = read_classes(classes, data_root)
        if names is not None:
            kwargs['metainfo'] = dict(kwargs.get('metainfo') or {}, classes=names)
        with DefaultScope.overwrite_default_scope('promptkit'):
            super().__init__(data_root=data_root, **kwargs)

    @staticmethod
    def _check_label(label: int, where: str, classes: Sequence[str] | None) -> int:
        if label < 0 or (classes is not None and label >= len(classes)):
            raise ValueError(f'{where}: label {label} is outside 0..{len(classes) - 1 if classes else "inf"}'
                             + (f' ({len(classes)} classes)' if classes else ''))
        return label


@DATASETS.register_module()
class ImageListDataset(_ImageDataset):
    """Images listed with their labels: VTAB-1k text lists or VPT's FGVC json splits.

    A ``.txt`` list has one ``relative/path.jpg label`` per line (the path may contain spaces: the label is the
    last field); a ``.json`` list maps relative paths to labels. Paths are joined to ``data_prefix['img_path']``,
    which MMEngine joins to ``data_root``.

    Args:
        ann_file: The list, relative to ``data_root``.
        data_root: Data set folder.
        data_prefix: ``dict(img_path=...)``, folder the listed paths are relative to. Defaults to ``data_root``.
        classes: Class names, or a text file of them (relative to ``data_root``); stored as
            ``metainfo['classes']`` and used to check the labels. Defaults to None (labels unchecked).
        **kwargs: Arguments of MMEngine's ``BaseDataset`` (``pipeline``, ``test_mode``, ``indices``, ...).

    Examples:
        >>> ds = ImageListDataset(ann_file='train800val200.txt', data_root='data/vtab-1k/cifar',
        ...                       pipeline=[dict(type='LoadImageFromFile'), dict(type='Resize', scale=224),
        ...                                 dict(type='PackImageInputs')])
    """

    def __init__(self, ann_file: str, data_root: str = '', data_prefix: dict | None = None,
                 classes: str | Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(classes=classes, ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def load_data_list(self) -> list[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{type(self).__name__}: annotation list {self.ann_file} does not exist')
        prefix = self.data_prefix.get('img_path', '')
        if self.ann_file.endswith('.json'):
            with open(self.ann_file) as f:
                items = list(json.load(f).items())
            where = [f'{self.ann_file}: {path!r}' for path, _ in items]
        else:
            items, where = [], []
            with open(self.ann_file) as f:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    parts = line.rstrip('\n').rsplit(maxsplit=1)
                    if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                        raise ValueError(f'{self.ann_file}:{i}: expected "relative/path.jpg label", got {line!r}')
                    items.append((parts[0], int(parts[1])))
                    where.append(f'{self.ann_file}:{i}')
        if not items:
            raise ValueError(f'{type(self).__name__}: {self.ann_file} lists no images')
        classes = self._metainfo.get('classes')
        return [dict(img_path=osp.join(prefix, path), gt_label=self._check_label(int(label), w, classes))
                for (path, label), w in zip(items, where)]


@DATASETS.register_module()
class ImageFolderDataset(_ImageDataset):
    """Images in one sub-folder per class (``<data_prefix.img_path>/<class>/<image>``), as torchvision's
    ``ImageFolder``: classes sorted by name unless given, label i is the i-th class.

    Args:
        data_root: Data set folder.
        data_prefix: ``dict(img_path=...)``, the folder holding the class folders, relative to ``data_root``
            (e.g. ``'train'``). Defaults to ``data_root`` itself.
        classes: Class folder names in label order, or a text file of them. Defaults to None (sorted names).
        extensions: File endings counted as images. Defaults to the common image types.
        **kwargs: Arguments of MMEngine's ``BaseDataset``.
    """

    def __init__(self, data_root: str = '', data_prefix: dict | None = None,
                 classes: str | Sequence[str] | None = None, extensions: Sequence[str] = IMG_EXTENSIONS,
                 **kwargs: Any) -> None:
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(classes=classes, ann_file='', data_root=data_root,
                         data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def load_data_list(self) -> list[dict]:
        root = self.data_prefix.get('img_path', '')
        if not osp.isdir(root):
            raise FileNotFoundError(f'{type(self).__name__}: image folder {root} does not exist')
        classes = self.metainfo.get('classes')
        if classes is None:
            classes = tuple(sorted(d.name for d in os.scandir(root) if d.is_dir()))
            self._metainfo['classes'] = classes
        data = []
        for label, name in enumerate(classes):
            folder = osp.join(root, name)
            if not osp.isdir(folder):
                raise FileNotFoundError(f'{type(self).__name__}: class folder {folder} does not exist')
            for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
                data += [dict(img_path=osp.join(dirpath, f), gt_label=label) for f in sorted(files)
                         if f.lower().endswith(self.extensions)]
        if not data:
            raise ValueError(f'{type(self).__name__}: no images with endings {self.extensions} under {root}')
        return data
