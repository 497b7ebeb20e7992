"""Image data: list / json / folder parsing, errors naming the file, the VTAB and FGVC pipelines, the digits."""
from __future__ import annotations

import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import DefaultScope

from conftest import ROOT
from promptkit.datasets import DigitsDataset, ImageFolderDataset, ImageListDataset, generate_digits_dataset
from promptkit.datasets.digits import DIGIT_NAMES

PACK = [dict(type='LoadImageFromFile'), dict(type='PackImageInputs')]


def write_image(path: str, h: int = 20, w: int = 30, value: int = 0) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.full((h, w, 3), value, np.uint8)
    img[:, : w // 2, 2] = 255  # red left half (BGR on disk)
    cv2.imwrite(path, img)
    return path


@pytest.fixture
def image_list(tmp_path):
    root = str(tmp_path)
    for i in range(4):
        write_image(osp.join(root, 'images', f'im {i}.png'), value=10 * i)
    with open(osp.join(root, 'train.txt'), 'w') as f:
        f.write('images/im 0.png 0\nimages/im 1.png 2\n\nimages/im 2.png 1\n')
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.write('a\nb\nc\n')
    return root


def test_list_parsing_paths_with_spaces_and_classes_file(image_list):
    ds = ImageListDataset(ann_file='train.txt', data_root=image_list, classes='classes.txt', pipeline=PACK)
    assert len(ds) == 3 and ds.metainfo['classes'] == ('a', 'b', 'c')
    info = ds.get_data_info(1)
    assert info['img_path'] == osp.join(image_list, 'images/im 1.png') and info['gt_label'] == 2
    sample = ds[2]
    assert sample['inputs'].shape == (3, 20, 30) and sample['inputs'].dtype == torch.uint8
    assert sample['data_samples'].gt_label.tolist() == [1]
    assert sample['inputs'][:, 0, 0].tolist() == [20, 20, 255]  # still BGR: the model's preprocessor flips it


def test_json_lists_with_prefix(image_list):
    with open(osp.join(image_list, 'val.json'), 'w') as f:
        json.dump({'im 3.png': 1, 'im 0.png': 0}, f)
    ds = ImageListDataset(ann_file='val.json', data_root=image_list, data_prefix=dict(img_path='images'),
                          pipeline=PACK)
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    assert ds[0]['inputs'].shape == (3, 20, 30)


@pytest.mark.parametrize('line, match', [('images/im 0.png\n', 'train.txt:1'), ('images/im 0.png x\n', 'train.txt:1'),
                                         ('images/im 0.png 7\n', 'label 7 is outside 0..2')])
def test_bad_lines_name_file_and_line(image_list, line, match):
    with open(osp.join(image_list, 'train.txt'), 'w') as f:
        f.write(line)
    with pytest.raises(ValueError, match=match):
        ImageListDataset(ann_file='train.txt', data_root=image_list, classes=('a', 'b', 'c'))


def test_missing_list_and_missing_image_name_the_file(image_list):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        ImageListDataset(ann_file='nope.txt', data_root=image_list)
    os.remove(osp.join(image_list, 'images', 'im 1.png'))
    ds = ImageListDataset(ann_file='train.txt', data_root=image_list, pipeline=PACK)
    with pytest.raises(FileNotFoundError, match='im 1.png'):
        ds[1]


def test_image_folder(tmp_path):
    for cls, n in (('b_cls', 2), ('a_cls', 1)):
        for i in range(n):
            write_image(str(tmp_path / 'train' / cls / f'{i}.jpg'))
    (tmp_path / 'train' / 'a_cls' / 'notes.txt').write_text('not an image')
    ds = ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img_path='train'), pipeline=PACK)
    assert ds.metainfo['classes'] == ('a_cls', 'b_cls')
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == [0, 1, 1]
    assert ds[0]['inputs'].shape == (3, 20, 30)
    with pytest.raises(FileNotFoundError, match='c_cls'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img_path='train'), classes=['a_cls', 'c_cls'])


def _pipeline(path: str, key: str) -> list:
    return Config.fromfile(osp.join(ROOT, 'configs/_base_', path))[key]


@pytest.mark.parametrize('base, key, size, out', [
    ('vapt_vtab.py', 'pipeline', (20, 30), (224, 224)),  # VTAB: resize to 224x224, aspect not kept
    ('vapt_fgvc.py', 'train_pipeline', (300, 400), (224, 224)),
    ('vapt_fgvc.py', 'test_pipeline', (300, 200), (224, 224)),
])
def test_recipe_pipelines_give_224(tmp_path, base, key, size, out):
    write_image(str(tmp_path / 'images' / 'x.png'), *size)
    (tmp_path / 'l.txt').write_text('images/x.png 0\n')
    ds = ImageListDataset(ann_file='l.txt', data_root=str(tmp_path), pipeline=_pipeline(base, key))
    sample = ds[0]
    assert sample['inputs'].shape == (3, *out) and sample['inputs'].dtype == torch.uint8
    assert sample['data_samples'].metainfo['ori_shape'] == size


def test_fgvc_resize_sets_the_short_side_to_256():
    with DefaultScope.overwrite_default_scope('promptkit'):  # as the image data sets build their pipelines
        resize = ROOT_TRANSFORMS.build(_pipeline('vapt_fgvc.py', 'test_pipeline')[1])
    for h, w, want in ((300, 600, (256, 512)), (500, 250, (512, 256))):
        assert resize(dict(img=np.zeros((h, w, 3), np.uint8)))['img'].shape[:2] == want


def test_random_crop_and_packer():
    crop = ROOT_TRANSFORMS.build(dict(type='promptkit.RandomCrop', crop_size=(4, 6)))
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out = crop(dict(img=img))
    assert out['img'].shape == (4, 6, 3) and out['img_shape'] == (4, 6)
    with pytest.raises(ValueError, match='smaller than the crop'):
        crop(dict(img=img[:3]))
    pack = ROOT_TRANSFORMS.build(dict(type='promptkit.PackImageInputs'))
    packed = pack(dict(img=np.zeros((5, 7), np.uint8), gt_label=3, img_path='p.png'))
    assert packed['inputs'].shape == (1, 5, 7) and packed['data_samples'].gt_label.tolist() == [3]
    assert packed['data_samples'].metainfo['img_path'] == 'p.png'


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits'))
    generate_digits_dataset(root)
    return root


def test_digits_layout_and_splits(digits_root):
    lines = {s: open(osp.join(digits_root, f'{s}.txt')).read().splitlines()
             for s in ('train800', 'val200', 'train800val200', 'test')}
    assert {s: len(v) for s, v in lines.items()} == dict(train800=800, val200=200, train800val200=1000, test=797)
    assert lines['train800val200'] == lines['train800'] + lines['val200']
    assert not set(lines['train800val200']) & set(lines['test'])
    img = cv2.imread(osp.join(digits_root, lines['test'][0].split()[0]))
    assert img.shape == (32, 32, 3) and img.max() > 200


def test_digits_are_deterministic_and_not_regenerated(digits_root, tmp_path):
    other = str(tmp_path / 'again')
    generate_digits_dataset(other)
    assert open(osp.join(other, 'test.txt')).read() == open(osp.join(digits_root, 'test.txt')).read()
    stamp = os.path.getmtime(osp.join(digits_root, 'test.txt'))
    DigitsDataset(split='test', data_root=digits_root)
    assert os.path.getmtime(osp.join(digits_root, 'test.txt')) == stamp


def test_digits_subset_relabelled(digits_root):
    full = DigitsDataset(split='train800val200', data_root=digits_root)
    sub = DigitsDataset(split='train800val200', data_root=digits_root, digits=(7, 5), pipeline=PACK)
    assert full.metainfo['classes'] == DIGIT_NAMES and sub.metainfo['classes'] == ('seven', 'five')
    n7 = sum(full.get_data_info(i)['gt_label'] == 7 for i in range(len(full)))
    labels = [sub.get_data_info(i)['gt_label'] for i in range(len(sub))]
    assert set(labels) == {0, 1} and labels.count(0) == n7
    assert sub[0]['inputs'].shape == (3, 32, 32)
    with pytest.raises(ValueError, match='distinct digits'):
        DigitsDataset(data_root=digits_root, digits=(1, 1))
