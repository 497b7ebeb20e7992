"""tools/train.py on the Stable Diffusion DreamBooth config with a tiny SD folder, tools/generate.py from its prompt
file, refusal on another base, and 2-process gloo DDP."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip('diffusers')
pytest.importorskip('transformers')
pytestmark = pytest.mark.slow

CONFIG = 'configs/approx_prompt/sd15_dreambooth.py'
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': ROOT}


def run(*args, check=True, torchrun=False):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29533'] \
        if torchrun else [sys.executable]
    r = subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f'{args} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
    return r


def _images(folder, n, seed):
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(os.path.join(folder, f'{i}.png'))
    return str(folder)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from t2i_tiny import tiny_sd_folder
    root = tmp_path_factory.mktemp('t2i_tools')
    sd = tiny_sd_folder(str(root / 'sd'), unet=dict(block_out_channels=(32, 32)))  # TODO seam: (32, 64)
    other = tiny_sd_folder(str(root / 'other'), seed=1, unet=dict(block_out_channels=(32, 32)))
    return dict(root=root, sd=sd, other=other, instance=_images(root / 'instance', 3, 0),
                cls=_images(root / 'class', 2, 1))


def _options(data, **extra):
    opts = {'model.pretrained': data['sd'], 'train_dataloader.dataset.instance_data_root': data['instance'],
            'train_dataloader.dataset.class_data_root': data['cls'], 'train_dataloader.dataset.resolution': 32,
            'train_dataloader.num_workers': 0, 'train_cfg.max_iters': 3, 'model.gradient_checkpointing': False,
            'model.sampler.num_inference_steps': 2, 'custom_hooks.1.interval': 2,
            'custom_hooks.1.num_inference_steps': 2, **extra}
    return ['--cfg-options', *[f'{k}={v}' for k, v in opts.items()]]


@pytest.fixture(scope='module')
def trained(data):
    work = data['root'] / 'work'
    r = run('tools/train.py', CONFIG, '--work-dir', str(work), *_options(data))
    return work, r.stdout + r.stderr


def test_train_writes_prompts_and_sample_grids(trained):
    work, log = trained
    assert (work / 'prompts.safetensors').exists() and (work / 'prompt_config.json').exists()
    assert (work / 'samples' / 'iter_2.png').exists() and (work / 'samples' / 'iter_3.png').exists()
    assert list(work.glob('*/vis_data/vis_image/samples_2.png'))
    assert 'loss_prior' in log


def test_generate_writes_images_from_the_prompt_file(data, trained, tmp_path):
    from PIL import Image
    work, _ = trained
    out = tmp_path / 'gen'
    run('tools/generate.py', CONFIG, str(work / 'prompts.safetensors'), 'a photo of sks dog', '--num-images', '2',
        '--steps', '2', '--out-dir', str(out), '--cfg-options', f'model.pretrained={data["sd"]}')
    assert Image.open(out / '0000.png').size == (32, 32) and (out / '0001.png').exists()
    assert (out / 'grid.png').exists()
    r = run('tools/generate.py', CONFIG, str(work), 'a photo of sks dog', '--num-images', '1', '--steps', '1',
            '--out-dir', str(tmp_path / 'other'), '--cfg-options', f'model.pretrained={data["other"]}', check=False)
    assert r.returncode != 0 and 'another frozen base' in r.stderr, r.stderr[-2000:]


def test_two_process_gloo_ddp(data, tmp_path):
    run('tools/train.py', CONFIG, '--launcher', 'pytorch', '--work-dir', str(tmp_path),
        *_options(data, **{'train_cfg.max_iters': 2}), torchrun=True)
    assert (tmp_path / 'prompts.safetensors').exists()
