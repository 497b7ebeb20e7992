"""FrameTower: image towers run frame by frame inside mmaction2, with ST-Adapter and the per-frame strategies."""
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import ROOT, point_at
from promptkit import FrameTower, PromptedBackbone, SiteInfo
from promptkit.artifacts import load_prompts, save_prompts
from promptkit.core import current_frames, frames
from promptkit.strategies.st_adapter import STAdapter
from test_st_adapter import per_adapter, randomise, reference_adapter

TINY_TIMM = dict(type='promptkit.FrameTower', tower='timm', model_name='vit_tiny_patch16_224', img_size=32,
                 patch_size=8, embed_dim=48, depth=2, num_heads=4)
TINY_CLIP_CFG = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2, head_width=12),
                     text_cfg=dict(context_length=16, vocab_size=100, width=32, heads=4, layers=1))
TINY_CLIP = dict(type='promptkit.FrameTower', tower='open_clip', model_name='tiny-frames', model_cfg=TINY_CLIP_CFG)
TOWERS = {'timm': TINY_TIMM, 'open_clip': TINY_CLIP}
BOTH = ('attn', 'mlp')
CLIP_CONFIGS = ['clip-vit-b16_k400.py', 'clip-vit-b16_ssv2.py', 'clip-vit-b16_k400_linear-probe.py']
DEMO_CONFIGS = ['frames_demo.py', 'frames_demo_linear-probe.py']


def recognizer(tower: dict, prompt=None, num_classes: int = 4, **backbone_kwargs) -> torch.nn.Module:
    """Recognizer3D + PromptedBackbone(FrameTower) + mmaction2's linear head, built through the registries."""
    from mmaction.registry import MODELS
    init_default_scope('mmaction')
    torch.manual_seed(0)
    cfg = dict(type='Recognizer3D',
               backbone=dict(type='promptkit.PromptedBackbone', backbone=dict(tower), prompt=prompt,
                             **backbone_kwargs),
               cls_head=dict(type='TimeSformerHead', num_classes=num_classes, in_channels=48, init_std=0.02,
                             dropout_ratio=0.5, average_clips='prob'),
               data_preprocessor=dict(type='ActionDataPreprocessor', format_shape='NCTHW'))
    return MODELS.build(cfg)


def clips(B: int = 2, T: int = 4) -> torch.Tensor:
    return torch.randn(B, 3, T, 32, 32, generator=torch.Generator().manual_seed(1))


def per_frame_reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The frozen per-frame model with the libraries' own forwards: a fresh FrameTower (never attached) holding the
    same weights, run one frame at a time; class tokens averaged over the frames, then the final norm."""
    attached = model.backbone.backbone
    cfg = dict(TOWERS[attached.kind])
    cfg.pop('type')
    raw = FrameTower(**cfg).eval()
    raw.load_state_dict(attached.state_dict())
    assert not any('forward' in vars(m) for m in raw.modules())  # the library forwards, no promptkit site
    tokens = [raw.class_tokens(x[:, :, t]) for t in range(x.shape[2])]  # T x (B, C), one frame at a time
    return raw.final_norm(torch.stack(tokens, 1).mean(1))


@pytest.mark.parametrize('kind', ['timm', 'open_clip'])
def test_init_equals_frozen_per_frame_model(kind):
    bare = recognizer(TOWERS[kind]).eval()
    model = recognizer(TOWERS[kind], prompt=dict(type='STAdapter', width=8, positions=BOTH)).eval()
    missing, unexpected = bare.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith('backbone.prompt.') for k in unexpected)
    x = clips()
    with torch.no_grad():
        adapted, host = model.backbone(x), bare.backbone(x)
        with model.backbone.prompts_disabled():
            disabled = model.backbone(x)
        assert adapted.shape == (2, 48)
        assert torch.equal(adapted, host) and torch.equal(adapted, disabled)  # zero-initialised conv: exact
        # ... and that is the library's own tower on each frame, class tokens averaged, then the final norm.
        reference = per_frame_reference(model, x)
        torch.testing.assert_close(adapted, reference, atol=1e-5, rtol=1e-4)
        randomise(model.backbone.prompt)  # the adapters really run
        assert not torch.allclose(model.backbone(x), host, atol=1e-4)


def test_host_delegates_and_marks_frames():
    model = recognizer(TINY_CLIP, prompt=dict(type='STAdapter', width=8))
    host = model.backbone.host
    assert host.inner.name.startswith('open_clip') and host.name.startswith('promptkit FrameTower')
    infos = host.infos()
    assert [i.name for i in infos] == ['tower.transformer.resblocks.0.attn', 'tower.transformer.resblocks.1.attn']
    assert all(i.layout == 'frames' and i.grid == (4, 4) and i.num_prefix_tokens == 1 for i in infos)
    for info in infos:  # every name is a real path in the FrameTower
        model.backbone.backbone.get_submodule(info.name)
    assert host.roles == {'head_norm': 'tower.ln_post'}
    assert host.role_module('head_norm') is model.backbone.backbone.final_norm


def test_one_adapter_at_vit_b_width():
    s = STAdapter(width=384, positions=('mlp',), layers=[0])
    s.setup([SiteInfo(name=f'tower.blocks.{i}.attn', layer=i, num_layers=12, dim=768, num_heads=12, head_dim=64,
                      layout='frames', num_prefix_tokens=1, grid=(14, 14)) for i in range(12)])
    assert sum(p.numel() for p in s.parameters()) == 592_512 == per_adapter(768, 384)


def frame_sites(T_grid=(2, 3), prefix=1, dim=8) -> list:
    return [SiteInfo(name='tower.blocks.0.attn', layer=0, num_layers=1, dim=dim, num_heads=2, head_dim=dim // 2,
                     layout='frames', num_prefix_tokens=prefix, grid=T_grid)]


def test_frames_adapter_is_the_video_adapter_on_regrouped_frames():
    torch.manual_seed(0)
    s = STAdapter(width=5, positions=BOTH)
    s.setup(frame_sites())
    randomise(s)
    site, B, T, h, w = s.sites[0], 2, 6, 2, 3
    x = torch.randn(B * T, 1 + h * w, 8)  # (B·T, 1 + h·w, C), the frames of a clip contiguous
    with torch.no_grad(), frames(T):
        out = s.pre_mlp(site, x)
    patches = x[:, 1:].reshape(B, T * h * w, 8)  # (B, t·h·w, C) in (t, h, w) order
    ref = patches + reference_adapter(s.adapters['mlp'][0], patches, (T, h, w))
    torch.testing.assert_close(out[:, 1:], ref.reshape(B * T, h * w, 8), atol=1e-6, rtol=1e-5)
    assert torch.equal(out[:, 0], x[:, 0])


def test_temporal_locality_across_frames_and_class_token_bypass():
    """One adapter layer, non-zero conv: changing frame t (all its tokens, class token included) changes the adapted
    patch tokens of frames t-1, t, t+1 of the same clip only, and the class tokens of no other frame."""
    torch.manual_seed(0)
    s = STAdapter(width=5, positions=('mlp',))
    s.setup(frame_sites())
    randomise(s)
    site, B, T, hw = s.sites[0], 2, 6, 6
    x = torch.randn(B * T, 1 + hw, 8)
    y = x.clone()
    y[2] += torch.randn(1 + hw, 8)  # clip 0, frame 2: class token and every patch
    with torch.no_grad(), frames(T):
        base, moved = s.pre_mlp(site, x), s.pre_mlp(site, y)
    patches_changed = [(moved[i, 1:] != base[i, 1:]).any().item() for i in range(B * T)]
    assert patches_changed == [False, True, True, True, False, False] + [False] * T  # clip 1 untouched
    cls_changed = [(moved[i, 0] != base[i, 0]).any().item() for i in range(B * T)]
    assert cls_changed == [i == 2 for i in range(B * T)]  # only the changed frame's own (bypassing) class token
    assert torch.equal(moved[:, 0], y[:, 0])


def adapter_names(positions, layers) -> set:
    return {f'backbone.prompt.adapters.{p}.{i}.{m}.{t}' for p in positions for i in range(layers)
            for m in ('fc1', 'conv', 'fc2') for t in ('weight', 'bias')}


def test_gradients_reach_exactly_adapters_and_head():
    model = recognizer(TINY_TIMM, prompt=dict(type='STAdapter', width=8, positions=BOTH))
    head = {'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == adapter_names(BOTH, 2) | head  # the tower's final norm stays frozen (official)
    assert model.backbone.num_trainable() == 4 * per_adapter(48, 8)
    randomise(model.backbone.prompt)
    feats = model.extract_feat(clips()[:, None])[0]
    F.cross_entropy(model.cls_head(feats), torch.tensor([1, 3])).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    # The readout is the class token, and after the last block's attention nothing mixes tokens any more: the
    # patch tokens the last pre-MLP adapter changes never reach the output (the same holds in the official code,
    # whose 12x384 preset counts this adapter). Every other adapter and the head get gradients.
    dead = {n for n in trainable if n.startswith('backbone.prompt.adapters.mlp.1.')}
    assert grads == trainable - dead
    assert all(not model.get_parameter(n).grad.any() for n in dead)


@pytest.mark.parametrize('kind', ['timm', 'open_clip'])
def test_frozen_tower_bit_identical_after_training_and_prompt_file_round_trip(kind, tmp_path):
    from conftest import train_steps_keep_frozen
    model = recognizer(TOWERS[kind], prompt=dict(type='STAdapter', width=8, positions=BOTH))
    before = train_steps_keep_frozen(model)  # asserts every frozen tensor is bit-identical after the steps
    after = dict(model.backbone.prompt.named_parameters())
    live = [n for n in before if not n.startswith('adapters.mlp.1.')]  # see test_gradients_reach_exactly_...
    assert all(not torch.equal(after[n], before[n]) for n in live)
    path = save_prompts(model, str(tmp_path))
    fresh = recognizer(TOWERS[kind], prompt=dict(type='STAdapter', width=8, positions=BOTH))
    load_prompts(fresh, path)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model.backbone(clips()), fresh.backbone(clips()))


PER_FRAME = [dict(type='DeepPrompt', num_tokens=3), dict(type='AttentionPrompt', num_tokens=2),
             dict(type='AdaptivePrompt', num_tokens=4), dict(type='ApproxPrompt', num_tokens=4)]


@pytest.mark.parametrize('prompt', PER_FRAME, ids=lambda p: p['type'])
def test_per_frame_strategies_are_image_strategies(prompt):
    """VPT, APT, VAPT and ApproxPrompt on a FrameTower act on each frame as on one image: the features equal the
    frame average of the same strategy's class tokens computed one frame at a time."""
    model = recognizer(TINY_TIMM, prompt=prompt).eval()
    randomise(model.backbone.prompt)
    tower, x = model.backbone.backbone, clips(B=2, T=3)
    with torch.no_grad():
        out = model.backbone(x)
        per_frame = []
        for t in range(3):
            with frames(1):
                per_frame.append(tower.class_tokens(x[:, :, t]))
        ref = tower.final_norm(torch.stack(per_frame, 1).mean(1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_half_tower_runs_and_trains_adapters():
    model = recognizer(dict(TINY_TIMM, half=True), prompt=dict(type='STAdapter', width=8))
    tower = model.backbone.backbone
    assert tower.tower.blocks[0].attn.qkv.weight.dtype == torch.float16
    assert tower.final_norm.weight.dtype == torch.float32
    assert model.backbone.prompt.adapters['mlp'][0].fc1.weight.dtype == torch.float32
    randomise(model.backbone.prompt)
    feats = model.extract_feat(clips()[:, None])[0]
    assert feats.dtype == torch.float32
    F.cross_entropy(model.cls_head(feats), torch.tensor([0, 1])).backward()
    assert model.backbone.prompt.adapters['mlp'][0].conv.weight.grad.abs().sum() > 0


def test_errors():
    with pytest.raises(RuntimeError, match='no frame count is set.*FrameTower'):
        current_frames()
    model = recognizer(TINY_TIMM, prompt=dict(type='STAdapter', width=8))
    with pytest.raises(RuntimeError, match='no frame count'):
        model.backbone.backbone.tower(torch.randn(2, 3, 32, 32))  # the inner tower alone has no T
    with pytest.raises(ValueError, match=r'clips \(B, C, T, H, W\)'):
        model.backbone(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match='move pretrained= into backbone'):
        PromptedBackbone(dict(TINY_TIMM), pretrained=os.path.join(ROOT, 'README.md'))
    with pytest.raises(ValueError, match='tower must be one of'):
        FrameTower(tower='torchvision', model_name='vit_b_16')
    from promptkit.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match='is not a file.*never does'):
        FrameTower(tower='open_clip', model_name='ViT-B-16', pretrained='openai')


@pytest.fixture(scope='module')
def demo_videos(tmp_path_factory):
    from promptkit.datasets import ensure_motion_dataset
    root = str(tmp_path_factory.mktemp('videos'))
    ensure_motion_dataset(root, num_train_per_class=1, num_test_per_class=1)
    return root


@pytest.mark.parametrize('name', CLIP_CONFIGS + DEMO_CONFIGS)
def test_configs_build_and_pipelines_run(name, demo_videos):
    """Each config with its tower shrunk (no weights): the model builds, trains its own set, and the data pipelines
    give (views, 3, 8, H, W) clips with the official view counts."""
    from mmaction.registry import DATASETS, MODELS
    from mmengine.optim import build_optim_wrapper
    cfg = point_at(Config.fromfile(os.path.join(ROOT, 'configs', 'st_adapter', name)), demo_videos)
    tower = cfg.model.backbone.backbone
    assert tower.type == 'promptkit.FrameTower'
    cfg.model.backbone.backbone = dict(TINY_CLIP if tower.tower == 'open_clip' else TINY_TIMM, half=False)
    cfg.model.cls_head.in_channels = 48
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    trainable = {n.split('.')[0] + '.' + n.split('.')[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == ({'backbone.prompt', 'cls_head.fc_cls'} if cfg.model.backbone.prompt else {'cls_head.fc_cls'})
    build_optim_wrapper(model, cfg.optim_wrapper)
    views = {'clip-vit-b16_k400': 3, 'clip-vit-b16_ssv2': 3}.get(name.split('_linear')[0].removesuffix('.py'), 1)
    for split in ('train', 'test'):
        sample = DATASETS.build(cfg.get(f'{split}_dataloader').dataset)[0]
        inputs = sample['inputs']
        assert inputs.ndim == 5 and inputs.shape[1:3] == (3, 8)  # (views, C, T, H, W)
        assert inputs.shape[0] == (views if split == 'test' else 1)


def test_clip_vit_b16_configs_have_the_official_trainable_counts():
    """ViT-B/16 (open_clip, built once, no weights) in the K400 config: 12 x 592,512 = 7,110,144 adapter parameters
    + the 400-class head; the SSv2 preset on the same tower's sites: 24 x 592,512 + the 174-class head."""
    from mmaction.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'st_adapter', 'clip-vit-b16_k400.py'))
    cfg.model.backbone.backbone.pretrained = None
    init_default_scope('mmaction')
    model = MODELS.build(cfg.model)
    infos = model.backbone.host.infos()
    assert len(infos) == 12 and {(i.dim, i.num_heads, i.grid, i.num_prefix_tokens) for i in infos} == \
        {(768, 12, (14, 14), 1)}
    assert model.backbone.num_trainable() == 7_110_144
    head = sum(p.numel() for p in model.cls_head.parameters() if p.requires_grad)
    assert head == 768 * 400 + 400
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 7_110_144 + 307_600
    ssv2 = Config.fromfile(os.path.join(ROOT, 'configs', 'st_adapter', 'clip-vit-b16_ssv2.py'))
    from promptkit.models import build_prompt
    s = build_prompt(ssv2.model.backbone.prompt)
    s.setup(infos)
    assert sum(p.numel() for p in s.parameters()) == 14_220_288 and ssv2.model.cls_head.num_classes == 174
    with torch.no_grad():  # a 1-frame clip at 224 runs through the fp16 tower
        out = model.backbone(torch.randn(1, 3, 1, 224, 224))
    assert out.shape == (1, 768) and out.dtype == torch.float32 and torch.isfinite(out).all()
