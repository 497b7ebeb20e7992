"""Tests of the synthetic moving-shape dataset (``promptkit.datasets.demo``), through mmaction2's own pipeline."""
import filecmp
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from promptkit._compat import stub_mmaction_drn

stub_mmaction_drn()  # Before anything imports mmaction.datasets / mmaction.models.

from mmaction.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import Compose  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from promptkit.datasets import DemoMotionDataset, ensure_motion_dataset, generate_motion_dataset  # noqa: E402
from promptkit.datasets import demo  # noqa: E402
from promptkit.registry import DATASETS  # noqa: E402
from conftest import ROOT  # noqa: E402

register_all_modules()

TINY = dict(num_train_per_class=2, num_test_per_class=2)
# The demo's own training pipeline (decode, resize to 32, NCTHW), read from its config rather than restated.
PIPELINE = Config.fromfile(os.path.join(ROOT, 'configs/_base_/apt_videomae_demo.py')).train_pipeline


@pytest.fixture(scope='module', params=['axis', 'diagonal'])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny generated dataset (2 train + 2 test clips per class) of each task."""
    root = tmp_path_factory.mktemp(f'demo_{request.param}')
    generate_motion_dataset(str(root), task=request.param, **TINY)
    return root, request.param


def _bright_centroid(frame: np.ndarray) -> np.ndarray:
    """(x, y) centroid of the pixels brighter than halfway between the median and the maximum of a (H, W) frame."""
    thr = (np.median(frame) + frame.max()) / 2
    ys, xs = np.nonzero(frame > thr)
    return np.array([xs.mean(), ys.mean()])


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    meta = generate_motion_dataset(str(a), seed=3, **TINY)
    generate_motion_dataset(str(b), seed=3, **TINY)
    generate_motion_dataset(str(c), seed=4, **TINY)
    files = sorted(str(p.relative_to(a)) for p in a.rglob('*') if p.is_file())
    assert sorted(str(p.relative_to(b)) for p in b.rglob('*') if p.is_file()) == files
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors, mismatch + errors
    # Another seed gives other clips, with the same layout and annotations.
    assert (a / 'train.txt').read_text() == (c / 'train.txt').read_text()
    clips = [f for f in files if f.endswith('.mp4')]
    assert len(clips) == meta['num_train'] + meta['num_test'] == 16
    assert not any(filecmp.cmp(a / f, c / f, shallow=False) for f in clips)


def test_annotation_files(tiny: tuple[Path, str]) -> None:
    root, task = tiny
    classes = (root / 'classes.txt').read_text().split()
    assert classes == list(demo.TASKS[task])
    assert (root / '.complete').exists()
    for split, per_class in (('train', TINY['num_train_per_class']), ('test', TINY['num_test_per_class'])):
        lines = (root / f'{split}.txt').read_text().splitlines()
        assert len(lines) == per_class * len(classes)
        for line in lines:
            rel, label = line.split()
            assert rel.startswith(f'{split}/') and rel.endswith('.mp4')
            # train/<class>_<idx>.mp4 with the class's index as label.
            assert rel.split('/')[1].rsplit('_', 1)[0] == classes[int(label)]
            assert (root / 'videos' / rel).stat().st_size > 0
        labels = [int(line.split()[1]) for line in lines]
        assert np.bincount(labels).tolist() == [per_class] * len(classes)


def test_clips_move_in_labelled_direction(tiny: tuple[Path, str]) -> None:
    root, task = tiny
    classes = (root / 'classes.txt').read_text().split()
    pipeline = Compose(PIPELINE)
    for line in (root / 'test.txt').read_text().splitlines():
        rel, label = line.split()
        out = pipeline(dict(filename=str(root / 'videos' / rel), label=int(label), start_index=0, modality='RGB'))
        inputs = out['inputs']
        assert tuple(inputs.shape) == (1, 3, 8, 32, 32)
        # (1, C, T, H, W) -> (T, H, W) grey levels.
        grey = inputs[0].float().mean(0).numpy()
        shift = _bright_centroid(grey[-1]) - _bright_centroid(grey[0])
        direction = np.array(demo.DIRECTIONS[classes[int(label)]], dtype=float)
        direction /= np.linalg.norm(direction)
        along = shift @ direction
        across = abs(shift @ np.array([-direction[1], direction[0]]))
        # 14 frames apart at >= 1 px/frame per moving axis: at least ~14 px along the labelled direction.
        assert along > 10 and across < 3, (rel, shift)


def test_single_frames_do_not_reveal_the_class() -> None:
    # Opposite directions are time reversals of each other in distribution: frame t of 'right' clips and frame
    # T-1-t of 'left' clips show the shape at the same range of positions, and so does the bag of all frames.
    rng = np.random.default_rng(0)
    right = np.stack([demo._render_clip(rng, (1, 0), 16, 32) for _ in range(200)])
    left = np.stack([demo._render_clip(rng, (-1, 0), 16, 32) for _ in range(200)])
    # (N, T, H, W, 3) -> (N, T) x-centroids of the grey frames.
    xs_right, xs_left = (np.array([[_bright_centroid(f.mean(-1))[0] for f in clip] for clip in clips])
                         for clips in (right, left))
    for t in (0, 5, 8, 15):
        assert abs(xs_right[:, t].mean() - xs_left[:, 15 - t].mean()) < 1.0, t
    assert abs(xs_right.mean() - xs_left.mean()) < 0.5
    assert abs(xs_right.std() - xs_left.std()) < 0.5


def test_ensure_generates_only_when_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = demo.generate_motion_dataset

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, 'generate_motion_dataset', counting)
    root = str(tmp_path / 'data')
    assert ensure_motion_dataset(root, task='diagonal', **TINY) == root
    assert len(calls) == 1
    ensure_motion_dataset(root, task='diagonal', **TINY)
    assert len(calls) == 1, 'a complete dataset with the same arguments must not be regenerated'

    # A half-written dataset (no marker) is regenerated, and a stray clip of it is gone afterwards.
    os.remove(os.path.join(root, '.complete'))
    stray = Path(root, 'videos', 'train', 'stray_0.mp4')
    stray.write_bytes(b'')
    ensure_motion_dataset(root, task='diagonal', **TINY)
    assert len(calls) == 2 and not stray.exists()
    assert Path(root, '.complete').exists()

    # Other arguments regenerate too.
    ensure_motion_dataset(root, task='diagonal', num_train_per_class=1, num_test_per_class=2)
    assert len(calls) == 3
    assert len(Path(root, 'train.txt').read_text().splitlines()) == 4
    assert not list(Path(root).glob('.generating-*'))


@pytest.mark.parametrize('scope', [None, 'promptkit', 'mmaction'])
def test_dataset_builds_from_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str | None) -> None:
    data_root = str(tmp_path / 'data')
    # Un-prefixed names resolve in the current default scope: 'promptkit' or none at all (the registry's own).
    type_name = 'promptkit.DemoMotionDataset' if scope == 'mmaction' else 'DemoMotionDataset'
    if scope is None:
        monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
        assert DefaultScope.get_current_instance() is None
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build(dict(type=type_name, data_root=data_root, ann_file='test.txt', task='diagonal',
                                      split='test', generate_kwargs=TINY, pipeline=PIPELINE, test_mode=True))
        assert isinstance(dataset, DemoMotionDataset)
        assert len(dataset) == 4 * TINY['num_test_per_class']
        assert dataset.metainfo['classes'] == demo.TASKS['diagonal']
        sample = dataset[len(dataset) - 1]
        assert tuple(sample['inputs'].shape) == (1, 3, 8, 32, 32)
        assert sample['data_samples'].gt_label.item() == 3
        # The default ann_file is the split's list.
        train = DATASETS.build(dict(type=type_name, ann_file=None, data_root=data_root, task='diagonal',
                                    split='train', generate_kwargs=TINY, pipeline=PIPELINE))
        assert len(train) == 4 * TINY['num_train_per_class']
        assert tuple(train[0]['inputs'].shape) == (1, 3, 8, 32, 32)
