"""What ``tools/train.py`` and ``tools/test.py`` share beyond mmaction2's own tools: environment fixes and
early, clear errors for missing data."""
from __future__ import annotations

import os
import os.path as osp

from mmengine.config import Config


def setup_launcher(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without CUDA (torchrun with gloo on CPU).

    mmengine 0.10.7 calls ``torch.cuda.set_device`` and gives DDP ``device_ids=[rank]``, both of which fail
    without a GPU. We initialise the gloo process group ourselves and ask DDP for ``device_ids=None``.
    """
    import torch
    import torch.distributed as dist

    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)


def _dataset_paths(dataset: dict) -> list[tuple[str, str]]:
    """(config key, path) pairs a dataset config needs on disk, with mmaction2's joining rules."""
    if dataset is None or str(dataset.get('type', '')).split('.')[-1] == 'DemoMotionDataset':
        return []  # the demo data set writes itself when absent
    if 'dataset' in dataset and 'ann_file' not in dataset:  # RepeatDataset and similar wrappers
        return _dataset_paths(dataset['dataset'])
    root = dataset.get('data_root') or ''
    out = []
    ann = dataset.get('ann_file')
    if ann:
        out.append(('ann_file', ann if osp.isabs(ann) or not root else osp.join(root, ann)))
    for key, value in (dataset.get('data_prefix') or {}).items():
        if value:
            out.append((f'data_prefix.{key}', value if osp.isabs(value) or not root else osp.join(root, value)))
    return out


def check_data(cfg: Config, splits: tuple[str, ...]) -> None:
    """Fail before any work with one error listing every missing data path and how to set it."""
    missing = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for key, path in _dataset_paths(loader.get('dataset')):
            if not osp.exists(path):
                missing.append(f'  {split}_dataloader.dataset.{key}: {path}')
    if missing:
        where = cfg.filename or 'the config'
        raise FileNotFoundError(
            'data not found:\n' + '\n'.join(missing) + f'\nSet the data paths at the top of {where} (data_root, '
            'ann_file_*) to where your data set lives, or override them with --cfg-options, e.g. '
            f"--cfg-options {missing[0].split(':')[0].strip()}=/path/to/it. docs/datasets.md shows the layout.")


def default_work_dir(config: str) -> str:
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def set_local_rank(local_rank: int) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
