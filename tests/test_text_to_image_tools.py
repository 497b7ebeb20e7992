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
    sd = tiny_sd_folder(str(root / 'sd'))  # widths 32 and 64
    other = tiny_sd_folder(str(root / 'other'), seed=1)
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
    import torch
    ckpt = torch.load(work / 'iter_3.pth', map_location='cpu', weights_only=True)
    assert ckpt['state_dict'] and all(k.startswith('prompt.') for k in ckpt['state_dict'])
    assert ckpt['meta']['promptkit']['base_fingerprint']


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


T2I_CONFIGS = ['configs/approx_prompt/sd15_dreambooth.py', 'configs/apt/sd15_kv-prompt_dreambooth.py',
               'configs/lora/sd15_lora_dreambooth.py', 'configs/approx_prompt/sd15_text2image.py',
               'configs/approx_prompt/sdxl_dreambooth.py']


def test_text_to_image_configs_build(data, tmp_path):
    """Every text-to-image config builds its model and data set on tiny SD / SDXL folders; one loss step runs."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from PIL import Image
    from t2i_tiny import tiny_sdxl_folder
    sdxl = tiny_sdxl_folder(str(tmp_path / 'sdxl'), unet=dict(block_out_channels=(32, 64)))
    captioned = _images(tmp_path / 'captioned', 2, 2)
    with open(os.path.join(captioned, 'metadata.jsonl'), 'w') as f:
        f.write('{"file_name": "0.png", "text": "a red cube"}\n{"file_name": "1.png", "text": "a blue ball"}\n')
    assert Image.open(os.path.join(captioned, '0.png')).size == (48, 40)
    found = sorted(os.path.relpath(p, ROOT) for p in __import__('glob').glob(f'{ROOT}/configs/*/*.py')
                   if ('PromptedTextToImage' in open(p).read() or '/lora/' in p or 'sd15_' in p or 'sdxl_' in p)
                   and 't2i_digits' not in p)  # the digits demo configs: test_digits_demo_configs_train
    assert sorted(T2I_CONFIGS) == found
    for path in T2I_CONFIGS:
        cfg = Config.fromfile(os.path.join(ROOT, path))
        with DefaultScope.overwrite_default_scope(cfg.default_scope):  # restored: later tests build in theirs
            _build_and_step(cfg, path, data, sdxl, captioned)


def _build_and_step(cfg, path, data, sdxl, captioned):
    from promptkit.registry import DATASETS, MODELS
    cfg.model.pretrained = sdxl if 'sdxl' in path else data['sd']
    if 'sdxl' in path:
        cfg.model.pop('frozen_dtype')  # float16 matmuls are slow on CPU; the cast itself is config-independent
    ds = cfg.train_dataloader.dataset
    if ds.type == 'DreamBoothDataset':
        ds.update(instance_data_root=data['instance'], class_data_root=data['cls'], resolution=32)
    else:
        ds.update(data_root=captioned, resolution=32)
    model = MODELS.build(cfg.model)
    dataset = DATASETS.build(ds)
    items = [dataset[0], dataset[1]]
    losses = model([i['inputs'] for i in items], [i['data_samples'] for i in items], mode='loss')
    assert all(v.isfinite() for v in losses.values()), path
    assert ('loss_prior' in losses) == (ds.type == 'DreamBoothDataset')
    assert model.num_trainable() > 0 and (model.lora_cfg is not None) == ('lora' in path)


DIGITS_CONFIGS = ['configs/approx_prompt/t2i_digits_demo.py', 'configs/apt/t2i_digits_kv-prompt_demo.py',
                  'configs/lora/t2i_digits_lora_demo.py']


@pytest.mark.parametrize('config', DIGITS_CONFIGS)
def test_digits_demo_configs_train(config, tmp_path):
    """The demo's stage 2 through tools/train.py on a (random) tiny digits base: trains, validates with the
    digits judge at the end, writes the checkpoint, the prompt file and the sample grid."""
    import glob
    import json

    from promptkit.t2i.tiny import save_tiny_text_to_image
    base = save_tiny_text_to_image(str(tmp_path / 'base'))
    assert sorted(glob.glob(f'{ROOT}/configs/*/t2i_digits*.py')) == sorted(f'{ROOT}/{c}' for c in DIGITS_CONFIGS)
    work = tmp_path / 'work'
    opts = {'model.pretrained': base, 'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
            'default_hooks.checkpoint.interval': 2, 'train_dataloader.batch_size': 8,
            'val_dataloader.dataset.indices': 20, 'model.sampler.num_inference_steps': 2,
            'custom_hooks.1.interval': 2, 'custom_hooks.1.num_images': 1, 'custom_hooks.1.num_inference_steps': 2}
    run('tools/train.py', config, '--work-dir', str(work), '--cfg-options', *[f'{k}={v}' for k, v in opts.items()])
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    records = [json.loads(line) for line in open(scalars[0])]
    val = [r for r in records if 'content_accuracy' in str(r)]
    assert val and 0 <= next(v for k, v in val[-1].items() if k.endswith('content_accuracy')) <= 1, records
    assert (work / 'samples' / 'iter_2.png').exists() and (work / 'iter_2.pth').exists()
    assert (work / 'prompts.safetensors').exists()  # LoRA: the adapter weights, loaded as PEFT adapter 'promptkit'
