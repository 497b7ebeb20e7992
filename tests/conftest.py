"""Shared fixtures: tiny VideoMAE-shaped hosts (no downloads, CPU, seconds)."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
torch.set_flush_denormal(True)

import promptkit  # noqa: E402,F401  (drn stub before any mmaction import)

#: A VideoMAE ViT small enough for unit tests: 4 frames of 32x32, 8x8 patches, tubelet 2 -> N = 2*4*4 = 32.
TINY_VIT = dict(type='VisionTransformer', img_size=32, patch_size=8, embed_dims=48, depth=3, num_heads=4,
                num_frames=4, tubelet_size=2, norm_cfg=dict(type='LN', eps=1e-6))
TINY_TOKENS = 32


@pytest.fixture
def tiny_vit() -> dict:
    return dict(TINY_VIT)


@pytest.fixture
def clip() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 3, 4, 32, 32)


def tiny_recognizer(prompt=None, num_classes: int = 5, **backbone_kwargs) -> torch.nn.Module:
    """An mmaction2 Recognizer3D around a tiny PromptedBackbone, built through the registries as configs do."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    cfg = dict(type='Recognizer3D',
               backbone=dict(type='promptkit.PromptedBackbone', backbone=dict(TINY_VIT), prompt=prompt,
                             **backbone_kwargs),
               cls_head=dict(type='TimeSformerHead', num_classes=num_classes, in_channels=48,
                             average_clips='prob'),
               data_preprocessor=dict(type='ActionDataPreprocessor', format_shape='NCTHW'))
    return MODELS.build(cfg)


def train_steps_keep_frozen(model: torch.nn.Module, steps: int = 3, lr: float = 1e-2,
                            weight_decay: float = 1e-2) -> dict:
    """A few AdamW steps of a ``tiny_recognizer`` on random clips; asserts every frozen parameter is bit-identical
    afterwards and returns the prompt strategy's parameters as they were before training."""
    import torch.nn.functional as F
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.backbone.prompt.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(model.cls_head(model.extract_feat(torch.randn(2, 1, 3, 4, 32, 32))[0]),
                               torch.tensor([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = [n for n, p in model.named_parameters() if n in frozen and not torch.equal(p, frozen[n])]
    assert not changed, f'frozen parameters changed: {changed}'
    return before


def stacked(params) -> torch.Tensor:
    """A strategy's per-site parameters (a ParameterList of equal shapes) as one stacked tensor."""
    return torch.stack([p.detach() for p in params])


def point_at(cfg, videos: str):
    """Every data loader of a video config pointed at generated clips in ``videos`` (no workers)."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        ds = loader.dataset
        if 'DemoMotionDataset' in ds.type:
            ds.data_root = videos
            continue
        ds.ann_file = os.path.join(videos, 'train.txt' if split == 'train' else 'test.txt')
        ds.data_prefix = dict(video=os.path.join(videos, 'videos'))
        loader.num_workers, loader.persistent_workers = 0, False
    return cfg
