"""Every config parses and builds; the data pipelines run on generated videos; ViT-B SSv2 is exactly APT."""
import glob
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import ROOT, TINY_VIT, point_at

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', '*', '*.py')))
# Image-classifier configs (vapt/, approx_prompt/clip-*) are built by test_image_classifier.py.
CONFIGS = [c for c in CONFIGS if '/_base_/' not in c and '/vapt/' not in c and '/approx_prompt/clip-' not in c]
# FrameTower configs (st_adapter/clip-*, st_adapter/frames_demo*) are built by test_frame_tower.py.
CONFIGS = [c for c in CONFIGS if '/st_adapter/clip-' not in c and '/st_adapter/frames_demo' not in c]
# Text-to-image configs (PromptedTextToImage) are built by test_text_to_image_tools.py.
CONFIGS = [c for c in CONFIGS if 'PromptedTextToImage' not in open(c).read() and '/sd15_' not in c
           and '/sdxl_' not in c and '/lora/' not in c and '/t2i_digits' not in c]


@pytest.fixture(scope='module')
def demo_videos(tmp_path_factory):
    """A small generated data set in mmaction2's layout, standing in for SSv2 / UCF101 / HMDB51."""
    from promptkit.datasets import ensure_motion_dataset
    root = str(tmp_path_factory.mktemp('videos'))
    ensure_motion_dataset(root, num_train_per_class=1, num_test_per_class=1)
    return root


def tiny(cfg: Config, videos: str) -> Config:
    """Tiny model, no weights, and every data path pointed at the generated videos."""
    bb = cfg.model.backbone
    bb.backbone = dict(TINY_VIT, num_frames=16, img_size=64, patch_size=16)
    bb.pretrained = None
    cfg.model.cls_head.in_channels = 48
    return point_at(cfg, videos)


def build_dataset(cfg):
    from mmaction.registry import DATASETS
    return DATASETS.build(cfg)


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(c, ROOT) for c in CONFIGS])
def test_config_builds(path, demo_videos):
    cfg = tiny(Config.fromfile(path), demo_videos)
    assert 'promptkit' in cfg.custom_imports['imports']
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    from mmaction.registry import MODELS
    model = MODELS.build(cfg.model)
    assert any(p.requires_grad for p in model.parameters())
    for split in ('train', 'test'):
        sample = build_dataset(cfg.get(f'{split}_dataloader').dataset)[0]
        sample = sample if isinstance(sample, dict) else sample[0]  # RepeatAugDataset yields a list of views
        inputs = sample['inputs']
        assert inputs.ndim == 5 and inputs.shape[1] == 3  # (views, C, T, H, W)
    from mmengine.optim import build_optim_wrapper
    build_optim_wrapper(model, cfg.optim_wrapper)


def test_vit_b_ssv2_is_exactly_apt():
    """The real SSv2 config (no weights): a ViT-B whose trainable set is 1560*T + head + fc_norm, and whose
    attention runs through SDPA with T extra keys in every block."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/apt/videomae_ssv2.py'))
    cfg.model.backbone.pretrained = None
    init_default_scope('mmaction')
    from mmaction.registry import MODELS
    model = MODELS.build(cfg.model)
    T, C, K = 2, 768, 174
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(v for k, v in trainable.items() if '.prompt.' in k) == 1560 * T
    assert sum(trainable.values()) == 1560 * T + (C * K + K) + 2 * C
    assert sum(p.numel() for p in model.parameters()) > 86_000_000

    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        calls.append((q.shape, k.shape))
        return real(q, k, v, **kw)

    import promptkit.attention as attention
    attention.F.scaled_dot_product_attention = spy
    try:
        with torch.no_grad():
            model.eval().extract_feat(torch.randn(1, 1, 3, 16, 224, 224))
    finally:
        attention.F.scaled_dot_product_attention = real
    assert len(calls) == 12
    assert all(q == (1, 12, 1568, 64) and k == (1, 12, 1568 + T, 64) for q, k in calls)


def test_vit_b_ssv2_is_st_adapter_24x384():
    """The real ST-Adapter SSv2 config (no weights): 24 adapters of 592,512 + head, decay off on biases only."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/st_adapter/videomae_ssv2.py'))
    cfg.model.backbone.pretrained = None
    init_default_scope('mmaction')
    from mmaction.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    model = MODELS.build(cfg.model)
    C, Ca, K = 768, 384, 174
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(v for k, v in trainable.items() if '.prompt.' in k) == 24 * (2 * C * Ca + 5 * Ca + C) == 14_220_288
    assert sum(trainable.values()) == 14_220_288 + C * K + K
    assert model.backbone.prompt.sites[0].grid == (8, 14, 14)
    names = {id(p): n for n, p in model.named_parameters()}
    for g in build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups:
        for p in g['params']:
            assert g['weight_decay'] == (0.0 if names[id(p)].endswith('.bias') else 0.01), names[id(p)]
    with torch.no_grad():
        assert model.eval().extract_feat(torch.randn(1, 1, 3, 16, 224, 224))[0].shape == (1, C)


def test_vit_b_ssv2_is_exactly_approx_prompt():
    """The real ApproxPrompt SSv2 config (no weights): M = 200, rank 4 and a gate in each of 12 blocks, + head."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/approx_prompt/videomae_ssv2.py'))
    cfg.model.backbone.pretrained = None
    init_default_scope('mmaction')
    from mmaction.registry import MODELS
    model = MODELS.build(cfg.model)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(v for k, v in trainable.items() if '.prompt.' in k) == 12 * (200 * 768 + 2 * 4 * 768 + 1) == 1_916_940
    assert sum(trainable.values()) == 1_916_940 + 768 * 174 + 174
