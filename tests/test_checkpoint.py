"""Checkpoint reading / conversion / checked loading for mmaction2's VideoMAE ViT (tiny models, CPU)."""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from promptkit._compat import stub_mmaction_drn
from promptkit.artifacts import fingerprint
from promptkit.checkpoint import CheckpointError, read_state_dict
from promptkit.weights import load_videomae_backbone, videomae_to_mmaction

stub_mmaction_drn()
from mmaction.models.backbones.vit_mae import VisionTransformer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = dict(img_size=32, patch_size=8, embed_dims=48, depth=2, num_heads=4, num_frames=4, tubelet_size=2,
            norm_cfg=dict(type='LN', eps=1e-6))


def make_vit(seed: int | None = None, **overrides) -> VisionTransformer:
    """A tiny ViT; with ``seed``, every parameter random (the sinusoid ``pos_embed`` buffer stays)."""
    model = VisionTransformer(**{**TINY, **overrides}).eval()
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    return model


def to_videomae(key: str) -> str:
    """mmaction2 backbone key -> original VideoMAE key (the reverse of the conversion under test)."""
    key = key.replace('patch_embed.projection.', 'patch_embed.proj.')
    return key.replace('.mlp.layers.0.0.', '.mlp.fc1.').replace('.mlp.layers.1.', '.mlp.fc2.')


def write_pretrain(model: VisionTransformer, path: Path) -> None:
    sd = model.state_dict()
    enc = {f'encoder.{to_videomae(k)}': v for k, v in sd.items() if k != 'pos_embed' and not k.startswith('fc_norm')}
    extra = {'encoder.norm.weight': torch.ones(48), 'encoder.norm.bias': torch.zeros(48),
             'decoder.blocks.0.attn.qkv.weight': torch.randn(72, 24), 'decoder.norm.weight': torch.ones(24),
             'decoder.head.weight': torch.randn(1536, 24), 'encoder_to_decoder.weight': torch.randn(24, 48),
             'mask_token': torch.zeros(1, 1, 24), 'pos_embed': torch.zeros(1, 32, 24)}
    args = argparse.Namespace(model='pretrain_videomae_tiny', mask_ratio=0.9, input_size=32)
    torch.save({'model': {**enc, **extra}, 'epoch': 799, 'args': args}, path)


def write_finetune(model: VisionTransformer, path: Path, prefix: str = '', num_classes: int = 5) -> dict:
    head = {'head.weight': torch.randn(num_classes, 48), 'head.bias': torch.randn(num_classes)}
    sd = {prefix + to_videomae(k): v for k, v in model.state_dict().items() if k != 'pos_embed'}
    torch.save({'module': {**sd, **head}}, path)
    return head


def write_recognizer(model: VisionTransformer, path: Path) -> dict:
    from mmengine.logging import HistoryBuffer
    head = {'cls_head.fc_cls.weight': torch.randn(7, 48), 'cls_head.fc_cls.bias': torch.randn(7)}
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['data_preprocessor.mean'] = torch.zeros(3, 1, 1, 1)
    hub = {'log_scalars': {'train/loss': HistoryBuffer()}}
    torch.save({'meta': {'epoch': 3}, 'state_dict': {**sd, **head}, 'message_hub': hub}, path)
    return head


def assert_same(a: dict, b: dict, skip: tuple[str, ...] = ()) -> None:
    assert set(a) == set(b)
    for k in a:
        if not k.startswith(skip):
            assert torch.equal(a[k], b[k]), k


def test_pretrain_checkpoint(tmp_path: Path) -> None:
    src, path = make_vit(seed=0), tmp_path / 'videomae_pretrain.pth'
    write_pretrain(src, path)
    dst = make_vit()
    fc_norm_before = {k: v.clone() for k, v in dst.state_dict().items() if k.startswith('fc_norm.')}
    report = load_videomae_backbone(dst, str(path))
    assert report['format'] == 'videomae_pretrain'
    assert sorted(report['missing']) == ['fc_norm.bias', 'fc_norm.weight', 'pos_embed']
    assert {'encoder.norm.weight', 'encoder.norm.bias', 'mask_token', 'pos_embed', 'encoder_to_decoder.weight',
            'decoder.head.weight'} <= set(report['ignored'])
    assert report['head'] == {}
    assert_same(src.state_dict(), dst.state_dict(), skip=('fc_norm.',))
    for k, v in fc_norm_before.items():
        assert torch.equal(dst.state_dict()[k], v)


@pytest.mark.parametrize('prefix', ['', 'module.', 'backbone.'])
def test_finetune_checkpoint(tmp_path: Path, prefix: str) -> None:
    src, path = make_vit(seed=1), tmp_path / 'videomae_finetune.pth'
    head = write_finetune(src, path, prefix)
    dst = make_vit()
    report = load_videomae_backbone(dst, str(path))
    assert report['format'] == 'videomae_finetune'
    assert report['missing'] == ['pos_embed']
    assert torch.equal(report['head']['weight'], head['head.weight'])
    assert torch.equal(report['head']['bias'], head['head.bias'])
    assert_same(src.state_dict(), dst.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_recognizer_checkpoint(tmp_path: Path) -> None:
    src, path = make_vit(seed=2, init_values=0.1, use_learnable_pos_emb=True), tmp_path / 'recognizer.pth'
    head = write_recognizer(src, path)
    dst = make_vit(init_values=0.1, use_learnable_pos_emb=True)
    report = load_videomae_backbone(dst, str(path))
    assert report['format'] == 'mmaction_recognizer'
    assert report['missing'] == []
    assert report['ignored'] == ['data_preprocessor.mean']
    assert torch.equal(report['head']['weight'], head['cls_head.fc_cls.weight'])
    assert_same(src.state_dict(), dst.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_safetensors_backbone(tmp_path: Path) -> None:
    src, path = make_vit(seed=3), tmp_path / 'backbone.safetensors'
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = make_vit()
    report = load_videomae_backbone(dst, str(path))
    assert report['format'] == 'mmaction_backbone' and report['missing'] == [] and report['ignored'] == []
    assert len(report['loaded']) == len(src.state_dict())
    assert_same(src.state_dict(), dst.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_shape_mismatch_names_key_shapes_and_file(tmp_path: Path) -> None:
    path = tmp_path / 'wide.pth'
    write_recognizer(make_vit(seed=4, embed_dims=64), path)
    with pytest.raises(CheckpointError) as err:
        load_videomae_backbone(make_vit(), str(path))
    msg = str(err.value)
    assert 'patch_embed.projection.weight' in msg and str(path) in msg
    assert '(48, 3, 2, 8, 8)' in msg and '(64, 3, 2, 8, 8)' in msg
    assert 'embed_dims' in msg


def test_pos_embed_mismatch_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / 'eight_frames.pth'
    write_recognizer(make_vit(seed=5, num_frames=8), path)
    with pytest.raises(CheckpointError) as err:
        load_videomae_backbone(make_vit(), str(path))
    msg = str(err.value)
    assert 'pos_embed' in msg and '(1, 32, 48)' in msg and '(1, 64, 48)' in msg and 'num_frames' in msg
    assert str(path) in msg


def test_missing_and_surplus_blocks(tmp_path: Path) -> None:
    shallow, deep = tmp_path / 'shallow.pth', tmp_path / 'deep.pth'
    write_finetune(make_vit(seed=6, depth=1), shallow)
    write_finetune(make_vit(seed=6, depth=3), deep)
    with pytest.raises(CheckpointError, match=r'lacks .*blocks\.1\.'):
        load_videomae_backbone(make_vit(), str(shallow))
    with pytest.raises(CheckpointError, match=r'the model lacks.*blocks\.2\.'):
        load_videomae_backbone(make_vit(), str(deep))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / 'nowhere' / 'videomae.pth'
    with pytest.raises(CheckpointError, match='pretrained=') as err:
        load_videomae_backbone(make_vit(), str(path))
    assert str(path) in str(err.value)


def test_unrelated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / 'resnet.pth'
    torch.save({'model': {'conv1.weight': torch.randn(8, 3, 3, 3), 'fc.weight': torch.randn(10, 8)}}, path)
    with pytest.raises(CheckpointError, match='does not look like a VideoMAE') as err:
        load_videomae_backbone(make_vit(), str(path))
    assert str(path) in str(err.value)


def test_fingerprint() -> None:
    tensors = {'b': torch.randn(3, 4), 'a': torch.arange(5), 'c': torch.randn(2).bfloat16(), 'd': torch.tensor(1.5)}
    fp = fingerprint(tensors)
    assert fp == fingerprint(dict(reversed(list(tensors.items())))) == fingerprint(tensors)
    assert len(fp) == 16 and int(fp, 16) >= 0
    changed = {k: v.clone() for k, v in tensors.items()}
    changed['c'][1] += 1
    assert fingerprint(changed) != fp
    assert fingerprint({**tensors, 'a': tensors['a'].float()}) != fp  # dtype counts
    assert fingerprint({**tensors, 'b': tensors['b'].reshape(4, 3)}) != fp  # shape counts
    assert fingerprint(make_vit(seed=0).state_dict()) == fingerprint(make_vit(seed=0).state_dict())


def load_tool():
    """Import ``tools/convert_videomae.py`` as a module (it must not run on import)."""
    spec = importlib.util.spec_from_file_location('convert_videomae', REPO / 'tools' / 'convert_videomae.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('num_classes, keeps_head', [(None, True), (5, True), (9, False)])
def test_convert_tool(tmp_path: Path, capsys: pytest.CaptureFixture, num_classes: int | None,
                      keeps_head: bool) -> None:
    src_model, src, dst = make_vit(seed=7), tmp_path / 'finetune.pth', tmp_path / 'out' / 'mmaction.pth'
    head = write_finetune(src_model, src)
    argv = [str(src), str(dst)] + (['--num-classes', str(num_classes)] if num_classes is not None else [])
    assert load_tool().main(argv) == 0
    out = capsys.readouterr().out
    assert 'videomae_finetune' in out

    raw = torch.load(dst, map_location='cpu', weights_only=True)
    assert raw['meta']['source_format'] == 'videomae_finetune'
    backbone, extras = videomae_to_mmaction(read_state_dict(str(dst)))
    assert extras['format'] == 'mmaction_recognizer'
    assert_same(backbone, {k: v for k, v in src_model.state_dict().items() if k != 'pos_embed'})
    if keeps_head:
        assert torch.equal(extras['head']['weight'], head['head.weight'])
        assert torch.equal(extras['head']['bias'], head['head.bias'])
    else:
        assert extras['head'] == {} and 'dropping the head' in out
    dst_model = make_vit()
    load_videomae_backbone(dst_model, str(dst))
    assert_same(src_model.state_dict(), dst_model.state_dict())


def test_convert_tool_subprocess(tmp_path: Path) -> None:
    src_model, src, dst = make_vit(seed=8), tmp_path / 'pretrain.pth', tmp_path / 'mmaction.pth'
    write_pretrain(src_model, src)
    run = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_videomae.py'), str(src), str(dst)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    assert 'videomae_pretrain' in run.stdout and 'no head' in run.stdout
    backbone, extras = videomae_to_mmaction(read_state_dict(str(dst)))
    assert extras['head'] == {} and not any(k.startswith('norm.') or 'decoder' in k for k in backbone)
    dst_model = make_vit()
    report = load_videomae_backbone(dst_model, str(dst))
    assert report['format'] == 'mmaction_recognizer'
    assert_same(src_model.state_dict(), dst_model.state_dict(), skip=('fc_norm.',))

    missing = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_videomae.py'), str(tmp_path / 'no.pth'),
                              str(dst)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert missing.returncode == 1 and 'no.pth' in missing.stderr


def test_pretrain_into_backbone_without_mean_pooling(tmp_path: Path) -> None:
    src, path = make_vit(seed=9), tmp_path / 'videomae_pretrain.pth'
    write_pretrain(src, path)
    dst = make_vit(use_mean_pooling=False)
    report = load_videomae_backbone(dst, str(path))
    assert 'encoder.norm.weight' not in report['ignored'] and 'norm.weight' in report['loaded']
    assert torch.equal(dst.norm.weight, torch.ones(48)) and torch.equal(dst.norm.bias, torch.zeros(48))
    assert torch.equal(dst.blocks[1].attn.qkv.weight, src.blocks[1].attn.qkv.weight)
