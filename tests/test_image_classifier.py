"""Image classifiers (timm, open_clip): configs, zero-shot head, freezing, weights, and the digits demo end to end."""
from __future__ import annotations

import copy
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import open_clip
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from safetensors.torch import save_file

from conftest import ROOT
from promptkit.checkpoint import CheckpointError
from promptkit.datasets import generate_digits_dataset
from promptkit.models import OpenCLIPClassifier, TimmClassifier

TINY_TIMM = dict(model_name='vit_tiny_patch16_224', img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4)
TINY_CLIP = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2, head_width=12),
                 text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=4, layers=1))
CLASSES = ['cat', 'dog', 'bird']
TEMPLATES = ['a photo of a {}.', 'a drawing of a {}.']
PROMPTS = {'vapt': dict(type='AdaptivePrompt', num_tokens=3), 'vpt-deep': dict(type='DeepPrompt', num_tokens=3),
           'linear': None}
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'vapt', '*.py')) +
                 glob.glob(osp.join(ROOT, 'configs', 'approx_prompt', 'clip-*.py')))


def timm_clf(prompt=None, **kw) -> TimmClassifier:
    torch.manual_seed(0)
    return TimmClassifier(num_classes=3, prompt=prompt, **{**TINY_TIMM, **kw})


def clip_clf(prompt=None, name='tiny-test', **kw) -> OpenCLIPClassifier:
    torch.manual_seed(0)
    kw.setdefault('classnames', CLASSES)
    return OpenCLIPClassifier(name, num_classes=3, model_cfg=TINY_CLIP, prompt=prompt, templates=TEMPLATES, **kw)


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def batch(n: int = 4) -> dict:
    """What a data loader of PackImageInputs yields: uint8 (C, H, W) images and data samples with labels."""
    from mmaction.structures import ActionDataSample
    g = torch.Generator().manual_seed(2)
    return dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8) for _ in range(n)],
                data_samples=[ActionDataSample().set_gt_label(i % 3) for i in range(n)])


MAKERS = {'timm': timm_clf, 'clip': clip_clf}


# ---- configs ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def digits(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('digits'))
    generate_digits_dataset(root)
    with open(osp.join(root, 'two.txt'), 'w') as f:  # a short list valid for any class count >= 2
        f.writelines(f'images/{i:04d}.png {i % 2}\n' for i in range(4))
    with open(osp.join(root, 'two.json'), 'w') as f:
        json.dump({f'{i:04d}.png': i % 2 for i in range(4)}, f)
    return root


def tiny(cfg: Config, digits: str) -> Config:
    """Tiny models at 224 (32x32 patches, so the real pipelines fit), no weights, data pointed at the digits."""
    model = cfg.model
    model.pretrained = None
    if model.type.endswith('OpenCLIPClassifier'):
        if model.model_name != cfg.get('clip_name'):  # the real configs; the demos are tiny already
            model.model_name, model.model_cfg = 'tiny-test-224', copy.deepcopy(TINY_CLIP)
            model.model_cfg['vision_cfg'].update(image_size=224, patch_size=32)
    elif model.model_name == 'vit_base_patch16_224':
        model.update(TINY_TIMM, img_size=224, patch_size=32)
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        ds.data_root = digits
        if ds.type.endswith('ImageListDataset'):
            json_list = ds.ann_file.endswith('.json')
            ds.ann_file = 'two.json' if json_list else 'two.txt'
            ds.data_prefix = dict(img_path='images' if json_list else '')
        cfg[f'{split}_dataloader'].update(num_workers=0, persistent_workers=False)
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(c) for c in CONFIGS])
def test_config_builds_and_trains_a_step(path, digits):
    cfg = tiny(Config.fromfile(path), digits)
    assert 'promptkit' in cfg.custom_imports['imports']
    assert any(h.type == 'promptkit.PromptCheckpointHook' for h in cfg.custom_hooks)
    init_default_scope(cfg.default_scope)
    from mmaction.registry import DATASETS, MODELS
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    for split in ('train', 'test'):
        ds = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        samples = [ds[i] for i in range(2)]
        size = cfg.get('img_size', 224)
        assert samples[0]['inputs'].shape == (3, size, size)
    data = dict(inputs=[s['inputs'] for s in samples], data_samples=[s['data_samples'] for s in samples])
    model.train()
    loss = model.train_step(data, optim)['loss']
    assert torch.isfinite(loss)
    preds = model.val_step(data)
    assert len(preds) == 2 and torch.allclose(preds[0].pred_score.sum(), torch.tensor(1.0))


def test_real_configs_are_the_recipe():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/vapt/vapt_vit-b16_vtab-cifar100.py'))
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=5.0 * 64 / 256, momentum=0.9, weight_decay=1e-4)
    assert cfg.train_dataloader.batch_size == 64 and cfg.train_cfg.max_epochs == 100
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 10 and cosine.begin == 10 and cosine.end == 100 and cosine.by_epoch and warmup.by_epoch
    assert cfg.model.prompt == dict(type='AdaptivePrompt', num_tokens=10, static_layers=1, kernel_size=2,
                                    hidden_dim=8, dropout=0.1, conv_dropout=0.1, mlp_dropout=0.1)
    assert cfg.train_dataloader.dataset.ann_file == 'train800val200.txt'
    assert cfg.test_dataloader.dataset.ann_file == 'test.txt'


def test_vit_b16_vapt_trains_exactly_vapt_and_head():
    """The real ViT-B/16 VAPT model (no weights): 55,608 prompt parameters (docs/methods.md §3) + a 768 -> K head."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/vapt/vapt_vit-b16_vtab-dtd.py'))
    cfg.model.pretrained = None
    model = TimmClassifier(**{k: v for k, v in cfg.model.items() if k != 'type'})
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(v for k, v in trainable.items() if k.startswith('prompt.')) == 55_608
    assert sum(trainable.values()) == 55_608 + 768 * 47 + 47
    assert sum(p.numel() for p in model.parameters()) > 85_000_000


# ---- zero-shot head -------------------------------------------------------------------------------------------

def test_zero_shot_head_equals_open_clips_classifier():
    model = clip_clf().eval()
    torch.manual_seed(0)  # the same random CLIP as the one inside the wrapper
    clip = open_clip.create_model('tiny-test').eval()
    assert torch.equal(clip.visual.conv1.weight, model.backbone.conv1.weight)
    tokenizer = open_clip.get_tokenizer('tiny-test')
    weight = open_clip.build_zero_shot_classifier(clip, tokenizer, CLASSES, TEMPLATES, num_classes_per_batch=2,
                                                  device='cpu', use_tqdm=False)
    x = images()
    with torch.no_grad():
        want = clip.logit_scale.exp() * clip.encode_image(x, normalize=True) @ weight
        got = model(x)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not hasattr(model, 'transformer') and not any('token_embedding' in n for n, _ in model.named_modules())


def test_classnames_from_file_and_count_check(tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text('\n'.join(CLASSES) + '\n')
    torch.testing.assert_close(clip_clf(classnames=str(names)).head.weight, clip_clf().head.weight)
    with pytest.raises(ValueError, match='num_classes=3 classnames, got 2'):
        clip_clf(classnames=CLASSES[:2])


def test_linear_head_on_the_tower():
    model = clip_clf(head='linear', classnames=None)
    assert model.logit_scale is None and model.head.bias is not None
    assert model(images()).shape == (4, 3)


# ---- freezing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('prompt', PROMPTS, ids=list(PROMPTS))
@pytest.mark.parametrize('host', MAKERS)
def test_gradients_reach_exactly_prompts_and_head(host, prompt):
    model = MAKERS[host](copy.deepcopy(PROMPTS[prompt]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    head = {'backbone.head.weight', 'backbone.head.bias'} if host == 'timm' else {'head.weight'}
    assert trainable == head | {n for n in trainable if n.startswith('prompt.')}
    assert head <= trainable and (prompt == 'linear') == (not any(n.startswith('prompt.') for n in trainable))
    model.train()
    loss = model.forward(images(), batch()['data_samples'], mode='loss')['loss']
    loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n in trainable), n
    assert all(model.get_parameter(n).grad.abs().sum() > 0 for n in head)


@pytest.mark.parametrize('host', MAKERS)
def test_frozen_tower_bit_identical_after_steps(host):
    model = MAKERS[host](dict(type='AdaptivePrompt', num_tokens=3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=0.1)))
    model.train()
    for _ in range(3):
        model.train_step(batch(), optim)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != p.requires_grad, n


@pytest.mark.parametrize('host', MAKERS)
def test_host_eval_follows_the_strategy(host):
    vapt = MAKERS[host](dict(type='AdaptivePrompt', num_tokens=3)).train()
    assert not vapt.backbone.training and vapt.prompt.training and vapt.training
    vpt = MAKERS[host](dict(type='DeepPrompt', num_tokens=3)).train()
    assert vpt.backbone.training


def test_predict_gives_scores_acc_metric_reads():
    from mmaction.evaluation import AccMetric
    model = timm_clf(dict(type='DeepPrompt', num_tokens=2)).eval()
    data = batch()
    preds = model.val_step(data)
    metric = AccMetric()
    metric.process(data, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    assert 0 <= result['top1'] <= 1
    assert [p.pred_label.item() for p in preds] == [p.pred_score.argmax().item() for p in preds]


def test_expected_trainable_and_hub_names_refused(tmp_path):
    n = timm_clf().num_trainable()
    timm_clf(expected_trainable=n)
    with pytest.raises(ValueError, match='expected_trainable'):
        timm_clf(expected_trainable=n + 1)
    with pytest.raises(ValueError, match='never downloads'):
        TimmClassifier('hf-hub:timm/vit_base_patch16_224.augreg_in21k', num_classes=3)
    with pytest.raises(CheckpointError, match='never does'):
        clip_clf(pretrained='openai')


# ---- weights ----------------------------------------------------------------------------------------------------

def _source_vit(num_classes: int = 3, **kw) -> torch.nn.Module:
    torch.manual_seed(123)
    return timm.create_model(pretrained=False, num_classes=num_classes, **{**TINY_TIMM, **kw})


@pytest.mark.parametrize('fmt', ['pth', 'safetensors', 'promptkit'])
def test_timm_pretrained_round_trip(tmp_path, fmt):
    src = _source_vit()
    state = src.state_dict()
    path = str(tmp_path / f'w.{"pth" if fmt != "safetensors" else "safetensors"}')
    if fmt == 'safetensors':
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    elif fmt == 'pth':
        torch.save({'state_dict': state}, path)
    else:  # a promptkit run's checkpoint: backbone.* plus that run's prompts, head and meta
        torch.save({'meta': {}, 'state_dict': {**{f'backbone.{k}': v for k, v in state.items()},
                                               'prompt.prompt': torch.zeros(1, 2, 48)}}, path)
    model = timm_clf(pretrained=path)
    for k, v in state.items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    fresh = timm_clf(pretrained=path, load_head=False)
    assert not torch.equal(fresh.backbone.head.weight, state['head.weight'])
    assert torch.equal(fresh.backbone.blocks[1].mlp.fc2.weight, state['blocks.1.mlp.fc2.weight'])


def test_timm_head_dropped_when_class_count_differs(tmp_path):
    path = str(tmp_path / 'w.pth')
    torch.save(_source_vit(num_classes=10).state_dict(), path)
    model = timm_clf(pretrained=path)
    assert model.backbone.head.weight.shape == (3, 48) and model.backbone.head.weight.requires_grad


def test_timm_mismatch_error_names_file_keys_and_shapes(tmp_path):
    path = str(tmp_path / 'wide.pth')
    torch.save(_source_vit(embed_dim=64, depth=3).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        timm_clf(pretrained=path)
    msg = str(err.value)
    assert 'wide.pth' in msg and 'blocks.2' in msg and '(64,)' in msg and '(48,)' in msg
    with pytest.raises(CheckpointError, match='does not exist'):
        timm_clf(pretrained=str(tmp_path / 'missing.pth'))


def test_open_clip_pretrained_full_checkpoint_and_promptkit_checkpoint(tmp_path):
    torch.manual_seed(5)
    open_clip.factory._MODEL_CONFIGS['tiny-test'] = copy.deepcopy(TINY_CLIP)
    clip = open_clip.create_model('tiny-test')
    full = str(tmp_path / 'clip.pth')
    torch.save(clip.state_dict(), full)
    model = clip_clf(pretrained=full)
    for k, v in clip.visual.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    ckpt = str(tmp_path / 'run.pth')  # e.g. a full fine-tuning run of the tower with a linear head
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in clip.visual.state_dict().items()},
                               'head.weight': torch.zeros(5, 32)}}, ckpt)
    tuned = clip_clf(pretrained=ckpt, prompt=dict(type='DeepPrompt', num_tokens=2))
    assert torch.equal(tuned.backbone.proj, clip.visual.proj)
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}}, ckpt)
    with pytest.raises(CheckpointError, match='run.pth does not fit the open_clip visual tower: missing'):
        clip_clf(pretrained=ckpt)


# ---- the demo ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_digits_demo_end_to_end(tmp_path):
    """Pre-train the tiny ViT on digits 0-4, VAPT on 5-9, test the checkpoint and the prompt file, via the tools
    (shortened: 15 + 8 epochs, about a minute; the full demo's numbers are in docs/image_tuning.md)."""
    env = dict(os.environ, OMP_NUM_THREADS='2')
    cmd = [sys.executable, 'tools/image_demo.py', '--work-dir', str(tmp_path), '--pretrain-epochs', '15',
           '--epochs', '8', '--variants', 'vapt', '--no-clip', '--json', str(tmp_path / 'results.json')]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    vapt = results['timm']['vapt']
    assert vapt['acc_top1'] >= 0.3 and vapt['acc_top1_prompt_file'] == pytest.approx(vapt['acc_top1'])
    assert osp.isfile(tmp_path / 'vapt_timm_digits_demo' / 'prompts.safetensors')


def test_vapt_head_init_is_the_official_one():
    import math

    from promptkit.models import TimmClassifier
    torch.manual_seed(0)
    model = TimmClassifier('vit_tiny_patch16_224', num_classes=200, head_init='vapt', img_size=32, patch_size=8,
                           depth=1, prompt=dict(type='DeepPrompt', num_tokens=2))
    head = model.backbone.get_classifier()
    assert torch.allclose(head.bias, torch.full((200,), -math.log(99)))
    std = head.weight.std().item()  # Kaiming-normal, fan-out = 200 outputs: std sqrt(2 / 200) = 0.1
    assert 0.09 < std < 0.11
    with pytest.raises(ValueError, match='head_init'):
        TimmClassifier('vit_tiny_patch16_224', num_classes=2, head_init='kaiming', img_size=32, patch_size=8)
