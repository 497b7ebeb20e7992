"""The demo end to end through the real tools, and the checkpoint contract around it."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

pytestmark = pytest.mark.slow


def run(*args, check=True):
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f'{args} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
    return r


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo')
    r = run('tools/demo.py', '--work-dir', str(work))
    return work, r.stdout


def test_demo_trains_and_tests(demo):
    work, out = demo
    apt = work / 'videomae_demo'
    acc = json.loads((apt / 'test_metrics.json').read_text())['acc/top1']
    assert acc >= 0.5, out[-2000:]  # at least twice chance (4 classes)
    assert 'prompt-tuned test top-1 accuracy' in out
    # The trainable-parameter table is saved beside the log.
    tables = list(apt.glob('*/trainable_parameters.txt'))
    assert tables and 'prompt.prompt_k' in tables[0].read_text() and 'cls_head.fc_cls.weight' in tables[0].read_text()


def test_checkpoints_hold_trained_tensors_only(demo):
    work, _ = demo
    ckpt = torch.load(max((work / 'videomae_demo').glob('epoch_*.pth')), map_location='cpu', weights_only=True)
    keys = set(ckpt['state_dict'])
    depth = len({k.split('.')[-1] for k in keys if k.startswith('backbone.prompt.prompt_k.')})
    assert depth == 4 and keys == {f'backbone.prompt.{n}.{i}' for n in ('prompt_k', 'prompt_v', 'prompt_scale')
                                   for i in range(depth)} | {
        'backbone.backbone.fc_norm.weight', 'backbone.backbone.fc_norm.bias', 'cls_head.fc_cls.weight',
        'cls_head.fc_cls.bias'}
    assert 'optimizer' in ckpt and ckpt['meta']['promptkit']['base_fingerprint']
    # The full-fine-tuning stage keeps everything.
    base = torch.load(work / 'videomae_demo_pretrain' / 'epoch_30.pth', map_location='cpu', weights_only=True)
    assert any(k.startswith('backbone.backbone.blocks.') for k in base['state_dict'])


def test_resume_continues_from_a_prompt_only_checkpoint(demo, tmp_path):
    work, _ = demo
    apt = work / 'videomae_demo'
    base = work / 'videomae_demo_pretrain' / 'epoch_30.pth'
    r = run('tools/train.py', 'configs/apt/videomae_demo.py', '--work-dir', str(apt), '--resume',
            '--cfg-options', f'model.backbone.pretrained={base}', 'train_cfg.max_epochs=21',
            'default_hooks.checkpoint.interval=1')
    log = r.stdout + r.stderr
    assert 'resumed epoch: 20' in log
    assert (apt / 'epoch_21.pth').exists()


def test_test_refuses_prompts_for_another_base(demo, tmp_path):
    work, _ = demo
    apt = work / 'videomae_demo'
    other = work / 'videomae_demo_pretrain' / 'other_base.pth'
    state = torch.load(work / 'videomae_demo_pretrain' / 'epoch_30.pth', map_location='cpu', weights_only=True)
    state['state_dict']['backbone.backbone.blocks.0.norm1.weight'] += 1
    torch.save({'state_dict': state['state_dict']}, other)
    latest = max(apt.glob('epoch_*.pth'), key=lambda p: p.stat().st_mtime)
    for ckpt in (latest, apt / 'prompts.safetensors'):
        r = run('tools/test.py', 'configs/apt/videomae_demo.py', str(ckpt), '--work-dir', str(tmp_path),
                '--cfg-options', f'model.backbone.pretrained={other}', check=False)
        assert r.returncode != 0
        assert 'another frozen base' in r.stderr, r.stderr[-2000:]


def test_two_process_cpu_ddp(demo, tmp_path):
    """torchrun with gloo on CPU (DDP sees only the trainable prompts; no find_unused_parameters)."""
    work, _ = demo
    base = work / 'videomae_demo_pretrain' / 'epoch_30.pth'
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                        '--master_port', '29517', 'tools/train.py', 'configs/apt/videomae_demo.py',
                        '--launcher', 'pytorch', '--work-dir', str(tmp_path),
                        '--cfg-options', f'model.backbone.pretrained={base}', 'train_cfg.max_epochs=1',
                        'default_hooks.checkpoint.interval=1', 'train_cfg.val_interval=1'],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / 'epoch_1.pth').exists() and (tmp_path / 'prompts.safetensors').exists()
