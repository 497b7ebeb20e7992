"""FLOP counting with attention (``promptkit.flops``) and the cost report tool, on tiny models (CPU).

Convention everywhere: one multiply-add = 2 FLOPs. Tiny host: 32×32 frames, 8×8 patches, 4 frames, tubelet 2, so
N = (4/2)·(32/8)² = 32 tokens; width C = 48, H = 4 heads of d = 12, MLP ratio 4.
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count

import promptkit
from promptkit.analysis import COLUMNS
from promptkit.flops import count_flops, flop_counter, flops_breakdown, install_sdpa_flop_formulas

REPO = Path(__file__).resolve().parents[1]
TINY = dict(type='VisionTransformer', img_size=32, patch_size=8, embed_dims=48, depth=2, num_heads=4, num_frames=4,
            tubelet_size=2)
N, C, H = 32, 48, 4
SDPA_CPU = 'aten._scaled_dot_product_flash_attention_for_cpu'


def backbone(prompt: dict | None, depth: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return promptkit.PromptedBackbone(dict(TINY, depth=depth), prompt=prompt).eval()


def clip(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, 4, 32, 32)  # (B, C, T, H, W)


def math_backend_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """torch's own counter with SDPA forced onto the maths backend (plain bmm, which it counts). Grad stays on:
    under ``no_grad`` torch's module tracker fails on the prompts' parameter views (``count_flops`` handles that)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def test_sdpa_call_counted_like_math_backend_and_formula() -> None:
    B, heads, n, s, d = 2, 3, 10, 14, 8
    q, k, v = torch.randn(B, heads, n, d), torch.randn(B, heads, s, d), torch.randn(B, heads, s, d)
    with FlopCounterMode(display=False) as plain:
        F.scaled_dot_product_attention(q, k, v)
    assert plain.get_total_flops() == 0  # the gap being filled: torch has no formula for the CPU fused kernel
    formula = 2 * (2 * B * heads * n * s * d)  # q·kᵀ and attn·v, 2·B·H·N·S·d each
    assert count_flops(F.scaled_dot_product_attention, q, k, v) == formula
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as math:
        F.scaled_dot_product_attention(q, k, v)
    assert math.get_total_flops() == formula
    # Backward: the same formula torch uses for its CUDA fused kernels (scores recomputed).
    q.requires_grad_(True)
    with flop_counter() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    backward = counter.get_total_flops() - formula
    assert backward == sdpa_backward_flop_count(q.shape, q.shape, k.shape, v.shape) > 0
    # Registered globally, torch's own counter (as other tools build it) counts the CPU kernel too.
    install_sdpa_flop_formulas()
    install_sdpa_flop_formulas()  # idempotent
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        F.scaled_dot_product_attention(q, k, v)
    assert plain.get_total_flops() == formula


def test_fused_multihead_attention_counted() -> None:
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(2, 5, 16)
    slow = count_flops(mha.train(), x, x, x, need_weights=True)  # linear + bmm, counted by torch itself
    assert count_flops(mha.eval(), x, x, x) == slow  # the fused aten._native_multi_head_attention path


def test_whole_host_matches_math_backend() -> None:
    model = backbone(dict(type='AttentionPrompt', num_tokens=3))
    assert count_flops(model, clip()) == math_backend_flops(model, clip())


@pytest.mark.parametrize('depth,start,end', [(2, 0, None), (4, 1, 2)])
def test_apt_extra_flops_closed_form(depth: int, start: int, end: int | None) -> None:
    """APT adds T keys and T values of width d per head and layer; the sequence stays N tokens. Per prompted
    layer, q·p_kᵀ costs 2·N·T·d per head and attn·p_v the same, so over H heads (H·d = C) 2·(2·N·T·C); the
    prompts skip every linear layer. Dropout and the reparameterisation scale are elementwise: not counted.
    """
    T = 3
    L = (depth - 1 if end is None else end) - start + 1
    prompt = dict(type='AttentionPrompt', num_tokens=T, start=start, end=end)
    apt, bare = backbone(prompt, depth), backbone(None, depth)
    for B in (1, 2):
        extra = count_flops(apt, clip(B)) - count_flops(bare, clip(B))
        assert extra == B * 2 * (2 * N * T * C) * L
    ops_apt, ops_bare = flops_breakdown(apt, clip()), flops_breakdown(bare, clip())
    assert {op: n for op, n in ops_apt.items() if op != SDPA_CPU} == \
        {op: n for op, n in ops_bare.items() if op != SDPA_CPU}  # linear layers and the patch conv unchanged
    # Elementwise work never counts: training mode (prompt dropout on) and no reparam give the same FLOPs.
    assert count_flops(apt.train(), clip()) == count_flops(apt.eval(), clip())
    no_reparam = backbone(dict(prompt, reparam=False, dropout=0.0), depth)
    assert count_flops(no_reparam, clip()) == count_flops(apt, clip())


@pytest.mark.parametrize('depth,layers,deep', [(2, 'all', True), (4, [1, 2], True), (4, [1, 2], False)])
def test_vpt_extra_flops_closed_form(depth: int, layers, deep: bool) -> None:
    """VPT inserts T tokens into the residual stream at the input of the first prompted block (deep: replaced at
    every later prompted block) and removes them only after the model's last block, so every block from the
    first prompted one to the end runs on N + T tokens: L = depth − first prompted layer blocks pay.

    Per block on n tokens (MLP ratio 4, every linear 2·tokens·in·out):
    qkv 2·n·C·3C + proj 2·n·C·C + fc1 2·n·C·4C + fc2 2·n·4C·C = 24·n·C²; attention 4·H·n²·d = 4·n²·C.
    Extra per block = 24·T·C² + 4·C·((N + T)² − N²). The patch conv, pooling (after the prompts are removed)
    and norms are unchanged or not counted.
    """
    T = 5
    first = 0 if layers == 'all' else layers[0]
    L = depth - first
    vpt = backbone(dict(type='DeepPrompt', num_tokens=T, layers=layers, deep=deep), depth)
    extra = count_flops(vpt, clip()) - count_flops(backbone(None, depth), clip())
    assert extra == L * (24 * T * C * C + 4 * C * ((N + T) ** 2 - N ** 2))


def test_prompt_cost_tool_on_demo_config(tmp_path: Path) -> None:
    """The command line on a video and an image config (the open_clip digits demo, zero-shot head)."""
    cmd = [sys.executable, str(REPO / 'tools/analysis/prompt_cost.py'), str(REPO / 'configs/apt/videomae_demo.py'),
           str(REPO / 'configs/vapt/vapt_clip_digits_demo.py'),
           '--work-dir', str(tmp_path), '--device', 'cpu', '--repeats', '2', '--warmup', '1', '--train-batch', '2',
           '--threads', '1']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '| videomae_demo |' in out.stdout
    for name in ('prompt_cost.md', 'prompt_cost.csv', 'prompt_cost.png'):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / 'prompt_cost.csv') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert {'trainable_params', 'total_params', 'prompt_file_bytes', 'flops', 'bare_flops', 'extra_flops',
            'latency_ms', 'throughput', 'train_step_ms', 'peak_train_mem_mib'} <= set(COLUMNS)
    row = rows[0]
    # The demo: 8 frames / tubelet 2 × (32/8)² = 64 tokens, T = 8 prompts, width 64, 4 prompted layers.
    assert row['input_shape'] == '3x8x32x32' and row['views'] == '1'
    assert int(row['extra_flops']) == 2 * (2 * 64 * 8 * 64) * 4
    assert int(row['flops']) == int(row['bare_flops']) + int(row['extra_flops'])
    assert 0 < int(row['trainable_params']) < int(row['total_params'])
    assert float(row['latency_ms']) > 0 and float(row['train_step_ms']) > 0
    assert 'multiply-add = 2 FLOPs' in (tmp_path / 'prompt_cost.md').read_text()
    image = rows[1]
    assert '| vapt_clip_digits_demo |' in out.stdout
    assert image['input_shape'] == '3x32x32' and int(image['extra_flops']) > 0 and float(image['train_step_ms']) > 0
