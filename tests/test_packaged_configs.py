"""Packaged configs (`promptkit::...`) in `_base_` and by name, the curves PNG, TensorBoard and the confusion matrix
of a test run: one tiny demo run through MMEngine's Runner."""
import csv
import glob
import os
import os.path as osp

import pytest
from mmengine.config import Config

from promptkit.config_files import CONFIG_ROOT, list_configs, resolve_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_resolve_config_names_the_repository_file():
    path = resolve_config('promptkit::apt/videomae_demo.py')
    assert osp.samefile(path, osp.join(ROOT, 'configs', 'apt', 'videomae_demo.py'))
    assert resolve_config('configs/apt/videomae_demo.py') == 'configs/apt/videomae_demo.py'
    assert 'promptkit::apt/videomae_ssv2.py' in list_configs()
    assert not any('_base_' in c for c in list_configs())
    assert Config.fromfile(path).model == Config.fromfile(osp.join(ROOT, 'configs/apt/videomae_demo.py')).model
    with pytest.raises(FileNotFoundError, match='videomae_demo.py'):
        resolve_config('promptkit::apt/no_such_config.py')
    assert osp.isdir(CONFIG_ROOT)


def test_the_tools_read_packaged_config_names():
    """``promptkit-train promptkit::apt/videomae_demo.py``: both tools read configs through one function."""
    from promptkit.cli._common import read_config
    cfg = read_config('promptkit::apt/videomae_demo.py')
    assert cfg.filename == resolve_config('promptkit::apt/videomae_demo.py')
    assert cfg.model.backbone.prompt.type == 'AttentionPrompt'


def test_base_from_package_trains_tests_and_writes_outputs(tmp_path):
    pytest.importorskip('tensorboard')
    from mmengine.runner import Runner
    user = tmp_path / 'user.py'
    user.write_text(f"""
_base_ = 'promptkit::apt/videomae_demo.py'
demo_root = {str(tmp_path / 'data')!r}
small = dict(num_train_per_class=2, num_test_per_class=2)
train_dataloader = dict(batch_size=4, dataset=dict(data_root=demo_root, generate_kwargs=small))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=demo_root, generate_kwargs=small))
test_dataloader = val_dataloader
model = dict(backbone=dict(pretrained=None))
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
work_dir = {str(tmp_path / 'work')!r}
""")
    cfg = Config.fromfile(str(user))
    assert cfg.val_evaluator['_scope_'] == 'promptkit'  # what MMEngine gives every typed dict of a pkg:: base
    runner = Runner.from_cfg(cfg)
    runner.train()
    work = tmp_path / 'work'
    assert osp.getsize(work / 'curves.png') > 10_000
    assert glob.glob(str(work / '*' / 'vis_data' / 'events.out.tfevents.*'))
    metrics = runner.test()
    run_dir = osp.dirname(runner.logger.log_file)
    with open(osp.join(run_dir, 'confusion_matrix.csv')) as f:
        rows = list(csv.reader(f))
    classes = rows[0][1:]
    assert classes == list(runner.test_dataloader.dataset.metainfo['classes'])
    matrix = [[int(v) for v in r[1:]] for r in rows[1:]]
    assert sum(map(sum, matrix)) == len(runner.test_dataloader.dataset)
    with open(osp.join(run_dir, 'per_class_accuracy.csv')) as f:
        per_class = list(csv.DictReader(f))
    for i, row in enumerate(per_class):
        assert int(row['correct']) == matrix[i][i] and int(row['total']) == sum(matrix[i])
    # mmaction2's AccMetric computes the mean class accuracy on its own: both must agree.
    assert metrics['confusion/mean_class_accuracy'] == pytest.approx(metrics['acc/mean1'])
    assert osp.getsize(osp.join(run_dir, 'confusion_matrix.png')) > 5_000
    assert not os.path.exists(work / 'confusion_matrix.csv')  # per run, never over an earlier run's files
