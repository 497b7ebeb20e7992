"""Nothing a user wrote is touched: every data root a config can point to, planted with a user's files, stays
byte-for-byte as it was after the data sets are built (the generated ones refuse the folder, naming it)."""
import glob
import hashlib
import os
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import ROOT
from promptkit.datasets import ensure_motion_dataset
from promptkit.datasets.digits import ensure_digits_dataset
from promptkit.datasets.generated import ForeignDataRootError

CONFIGS = sorted(c for c in glob.glob(os.path.join(ROOT, 'configs', '*', '*.py')) if '/_base_/' not in c)
GENERATED = ('DemoMotionDataset', 'DigitsDataset')


def plant(root: Path) -> dict[str, str]:
    """A user's own data set where a generator would write (same names), plus files of their own."""
    files = {
        'videos/train/right_0.mp4': b'my own clip, not generated',
        'videos/mine.mp4': b'\x00\x01 my video',
        'images/0000.png': b'my own image',
        'train.txt': b'train/right_0.mp4 0\n',
        'test.txt': b'mine.mp4 1\n',
        'classes.txt': b'walking\nrunning\n',
        'train800val200.txt': b'images/0000.png 0\n',
        'notes.md': b'my notes',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return snapshot(root)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'dir'
            for p in sorted(root.rglob('*'))}


def datasets_of(cfg: Config):
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        ds = loader and loader.get('dataset')
        while ds is not None and 'dataset' in ds and 'ann_file' not in ds:  # RepeatDataset and similar wrappers
            ds = ds['dataset']
        if ds is not None:
            yield split, ds


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(c, ROOT) for c in CONFIGS])
def test_config_data_roots_leave_user_files_alone(path, tmp_path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    from mmaction.registry import DATASETS
    for split, ds in datasets_of(cfg):
        root = tmp_path / split
        root.mkdir()
        before = plant(root)
        ds = dict(ds, data_root=str(root))
        if 'data_prefix' in ds:  # prefixes in the same folder, as the config's layout has them
            ds['data_prefix'] = {k: str(root / 'videos') for k in ds['data_prefix']}
        if str(ds['type']).split('.')[-1] in GENERATED:
            with pytest.raises(ForeignDataRootError) as e:
                DATASETS.build(ds)
            assert str(root) in str(e.value) and 'new or empty folder' in str(e.value)
        else:
            try:
                DATASETS.build(ds)
            except Exception:  # a reader may refuse the planted lists: what matters is that it wrote nothing
                pass
        assert snapshot(root) == before, f'{split} data root changed'


@pytest.mark.parametrize('ensure', [ensure_motion_dataset, ensure_digits_dataset])
def test_generators_write_only_into_their_own_folders(ensure, tmp_path):
    user = tmp_path / 'user'
    user.mkdir()
    before = plant(user)
    with pytest.raises(ForeignDataRootError, match=str(user)):
        ensure(str(user))
    assert snapshot(user) == before
    # A lone file, not a folder, is refused too and left as it was.
    lone = tmp_path / 'lone'
    lone.write_bytes(b'mine')
    with pytest.raises(ForeignDataRootError, match='is a file'):
        ensure(str(lone))
    assert lone.read_bytes() == b'mine'
    # An empty folder (or one holding only a stale lock of a generator) is theirs; a folder they wrote stays theirs.
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / '.lock').write_bytes(b'')
    kwargs = dict(num_train_per_class=1, num_test_per_class=1) if ensure is ensure_motion_dataset else {}
    if ensure is ensure_digits_dataset:
        pytest.importorskip('sklearn')
    ensure(str(empty), **kwargs)
    assert (empty / '.complete').exists() and (empty / '.promptkit-generated').exists()
    # A file the user adds beside the generated ones survives a regeneration.
    (empty / 'notes.md').write_bytes(b'mine')
    os.remove(empty / '.complete')
    ensure(str(empty), **kwargs)
    assert (empty / 'notes.md').read_bytes() == b'mine' and (empty / '.complete').exists()
