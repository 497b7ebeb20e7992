"""A PNG of the training curves (loss, learning rate, validation metrics) at the end of training."""
from __future__ import annotations

import json
import os.path as osp
from collections import defaultdict

from mmengine.hooks import Hook

from ..registry import HOOKS

__all__ = ['TrainingCurvesHook', 'read_scalars', 'plot_curves']

#: Keys of MMEngine's scalar records that are bookkeeping, not curves.
_SKIP = {'step', 'iter', 'epoch', 'time', 'data_time', 'base_lr', 'memory'}


def read_scalars(path: str) -> tuple[list[dict], list[dict]]:
    """Split MMEngine's ``vis_data/scalars.json`` (one JSON record per line) into training and validation records.

    Training records carry ``iter``; validation records do not (their ``step`` is the epoch, or the iteration for
    iteration-based loops).
    """
    train, val = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                (train if 'iter' in record else val).append(record)
    return train, val


def plot_curves(train: list[dict], val: list[dict], out_file: str, by_epoch: bool = True) -> list[str]:
    """Draw loss, learning rate and each validation metric group against the training iteration.

    Returns:
        The panel titles drawn (empty when there was nothing to draw; then no file is written).
    """
    from matplotlib.figure import Figure  # a bare Figure renders with Agg, whatever pyplot's backend is

    last_iter = {}  # epoch -> its last iteration, to put epoch-stepped validation on the iteration axis
    for r in train:
        last_iter[r.get('epoch')] = max(last_iter.get(r.get('epoch'), 0), r['iter'])
    panels: dict[str, dict[str, tuple[list, list]]] = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for r in train:
        for key, value in r.items():
            if key in _SKIP or not isinstance(value, (int, float)):
                continue
            panel = 'loss' if key.startswith('loss') else 'learning rate' if key == 'lr' else \
                'training accuracy' if key.endswith('_acc') else 'training ' + key
            panels[panel][key][0].append(r['iter'])
            panels[panel][key][1].append(value)
    for r in val:
        x = last_iter.get(r['step'], r['step']) if by_epoch else r['step']
        for key, value in r.items():
            if key in _SKIP or not isinstance(value, (int, float)):
                continue
            panel = 'validation ' + key.split('/')[0]
            panels[panel][key][0].append(x)
            panels[panel][key][1].append(value)
    if not panels:
        return []
    names = list(panels)
    fig = Figure(figsize=(5 * min(len(names), 3), 3.6 * ((len(names) + 2) // 3)))
    for i, name in enumerate(names):
        ax = fig.add_subplot((len(names) + 2) // 3, min(len(names), 3), i + 1)
        for key, (xs, ys) in panels[name].items():
            ax.plot(xs, ys, marker='o' if len(xs) < 30 else None, markersize=3, label=key)
        ax.set_title(name)
        ax.set_xlabel('iteration')
        if name == 'learning rate':
            ax.ticklabel_format(axis='y', style='sci', scilimits=(-3, 3))
        ax.legend(fontsize='small')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return names


@HOOKS.register_module()
class TrainingCurvesHook(Hook):
    """At the end of training, draw ``curves.png`` in the work dir from the run's ``vis_data/scalars.json``.

    The scalars are the ones MMEngine's ``LocalVisBackend`` records (the logger's interval: loss terms, lr, and
    every validation metric). The figure is written into the run's folder ``<work_dir>/<timestamp>/`` and copied
    to ``<work_dir>/curves.png`` (the latest run's).

    Args:
        file_name: Name of the figure. Defaults to ``'curves.png'``.
    """

    priority = 'VERY_LOW'  # after the logger and checkpoint hooks have written this run's records

    def __init__(self, file_name: str = 'curves.png') -> None:
        self.file_name = file_name

    def after_train(self, runner) -> None:
        path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            runner.logger.info(f'promptkit: no {path} (no LocalVisBackend in the visualizer): no curves drawn')
            return
        train, val = read_scalars(path)
        run_file = osp.join(runner.log_dir, self.file_name)
        by_epoch = runner.train_loop.__class__.__name__ != 'IterBasedTrainLoop'
        if not plot_curves(train, val, run_file, by_epoch=by_epoch):
            return
        import shutil
        latest = osp.join(runner.work_dir, self.file_name)
        shutil.copyfile(run_file, latest)
        runner.logger.info(f'promptkit: training curves in {latest}')
