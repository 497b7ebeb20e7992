"""The cost measurement (``promptkit.analysis``) on a tiny image model and a tiny video model, from their demo configs.

FLOPs convention: one multiply-add = 2. The extra FLOPs of a strategy over the bare host are checked against closed
forms written from the configs' own sizes.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from promptkit.analysis import COLUMNS, Probe, measure_config

REPO = Path(__file__).resolve().parents[1]
FAST = dict(repeats=1, warmup=0, train_batch=2)


def config(name: str) -> Config:
    return Config.fromfile(str(REPO / 'configs' / name))


def test_image_model_cost_vpt_deep_closed_form():
    """VPT-deep on the timm digits ViT: every block runs on N + T tokens (N = 64 patches + the class token). Per
    block on n tokens (MLP ratio 4): 24·n·C² in the linear layers, 4·n²·C in attention, so the prompts add
    24·T·C² + 4·C·((N + T)² − N²) per block; the head reads the class token either way."""
    cfg = config('vapt/vpt-deep_timm_digits_demo.py')
    row = measure_config(cfg, **FAST)
    m, T = cfg.model, cfg.model.prompt.num_tokens
    C, L, N = m.embed_dim, m.depth, (m.img_size // m.patch_size) ** 2 + 1
    assert row['input_shape'] == f'3x{m.img_size}x{m.img_size}' and row['views'] == 1
    assert row['shape_source'] == 'model = test pipeline'
    assert row['extra_flops'] == L * (24 * T * C * C + 4 * C * ((N + T) ** 2 - N ** 2)) > 0
    assert row['flops'] == row['bare_flops'] + row['extra_flops'] == row['flops_per_sample']
    # Prompts L·T·C plus the new head C·K + K are what trains; the frozen ViT is the rest.
    K = m.num_classes
    assert row['trainable_params'] == L * T * C + C * K + K < row['total_params']
    assert row['prompt_file_bytes'] > 4 * row['trainable_params']  # float32 tensors plus the JSON header
    assert row['latency_ms'] > 0 and row['bare_latency_ms'] > 0 and row['train_step_ms'] > 0
    assert set(row) == set(COLUMNS)


def test_video_model_cost_apt_closed_form():
    """APT on the VideoMAE demo: 2·(2·N·T·C) per prompted layer (q·p_kᵀ and attn·p_v over all heads), nothing
    else; N = (frames / tubelet) · (size / patch)²."""
    cfg = config('apt/videomae_demo.py')
    row = measure_config(cfg, train=False, **FAST)
    bb = cfg.model.backbone.backbone
    T, C, L = cfg.model.backbone.prompt.num_tokens, bb.embed_dims, bb.depth
    N = bb.num_frames // bb.get('tubelet_size', 2) * (bb.img_size // bb.patch_size) ** 2
    assert row['input_shape'] == f'3x{bb.num_frames}x{bb.img_size}x{bb.img_size}'
    assert row['extra_flops'] == 2 * (2 * N * T * C) * L > 0
    assert row['train_step_ms'] is None and row['peak_train_mem_mib'] is None


def test_probe_feeds_each_wrapper_its_own_input():
    from promptkit.models import TimmClassifier
    from conftest import tiny_recognizer
    image = Probe(TimmClassifier('vit_tiny_patch16_224', num_classes=3, img_size=24, patch_size=8, embed_dim=32,
                                 depth=1, num_heads=2))
    video = Probe(tiny_recognizer(num_classes=4))
    assert image.inputs(2).shape == (2, 3, 24, 24) and image.logits(image.inputs(2)).shape == (2, 3)
    assert video.inputs(2).shape == (2, 1, 3, 4, 32, 32)  # (B, views, C, T, H, W): the tiny VideoMAE's own size
    assert video.logits(video.inputs(2)).shape == (2, 4)
    batch = video.train_batch(3, num_classes=4)
    assert [x.shape for x in batch['inputs']] == [(1, 3, 4, 32, 32)] * 3 and batch['inputs'][0].dtype == torch.uint8
    with pytest.raises(TypeError, match='dummy_inputs'):
        Probe(torch.nn.Linear(2, 2))

