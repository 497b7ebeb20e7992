"""Exact resume through the real tool: a run SIGKILLed mid-epoch and resumed ends with the weights of an
uninterrupted run, bit for bit (CPU); no checkpoint is ever half-written."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from promptkit.checkpoint import read_checkpoint, read_state_dict

pytestmark = pytest.mark.slow
TINY_DATA = dict(num_train_per_class=2, num_test_per_class=1)


def tiny_config(tmp: Path, data: Path, epochs: int) -> Path:
    """The demo's APT config on a tiny generated data set: 8 training clips, batches of 4 (2 iterations per
    epoch), a random frozen base (seeded), validation every 2 epochs, a checkpoint every epoch."""
    cfg = tmp / 'tiny_apt.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/apt/videomae_demo.py']
        gen = {TINY_DATA!r}
        model = dict(backbone=dict(pretrained=None))
        train_dataloader = dict(batch_size=4, dataset=dict(data_root='{data}', generate_kwargs=gen))
        val_dataloader = dict(dataset=dict(data_root='{data}', generate_kwargs=gen))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs={epochs}, val_interval=2)
        default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=10), logger=dict(interval=1))
    '''))
    return cfg


def train(cfg: Path, work: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'})


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    from promptkit.datasets import ensure_motion_dataset
    data = tmp_path / 'data'
    ensure_motion_dataset(str(data), task='diagonal', **TINY_DATA)
    cfg = tiny_config(tmp_path, data, epochs=3)
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    reference = train(cfg, whole)  # runs alongside the killed one
    run = train(cfg, killed)
    # Kill -9 inside epoch 3: after epoch 2's checkpoint, once epoch 3 has logged an iteration.
    deadline = time.time() + 120
    lines = []
    for line in run.stdout:
        lines.append(line)
        if 'Epoch(train) [3][1/2]' in line and (killed / 'epoch_2.pth').exists():
            run.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, ''.join(lines[-30:])
    run.wait()
    assert run.returncode == -signal.SIGKILL, ''.join(lines[-30:])
    assert not (killed / 'epoch_3.pth').exists()
    for ckpt in killed.glob('*.pth'):  # whatever is there is whole (written to a temporary file, then renamed)
        read_checkpoint(str(ckpt))
    earlier = {p.name: p.read_bytes() for p in killed.glob('epoch_*.pth')}

    resumed = train(cfg, killed, '--resume')
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert 'resumed epoch: 2' in out, out[-3000:]
    out_ref, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out_ref[-3000:]

    a, b = read_state_dict(str(whole / 'epoch_3.pth')), read_state_dict(str(killed / 'epoch_3.pth'))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), (k, (a[k] - b[k]).abs().max())
    # The checkpoints written before the kill were not rewritten by the resumed run.
    for name, data_bytes in earlier.items():
        assert (killed / name).read_bytes() == data_bytes, name
    # Random states are in the checkpoint.
    meta = torch.load(killed / 'epoch_3.pth', map_location='cpu', weights_only=True)['meta']
    assert {'torch', 'numpy', 'python'} <= set(meta['promptkit_resume']['rng'])
