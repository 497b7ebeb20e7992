"""VAPT (``AdaptivePrompt``): parameter count, zero init, the per-layer maths, and its place in the token stream."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer

from promptkit import SiteInfo
from promptkit.models import attach_prompts, build_prompt
from promptkit.strategies import AdaptivePrompt, DeepPrompt

C, NP = 48, 3


def vit_b16_sites() -> list[SiteInfo]:
    """SiteInfos shaped like ViT-B/16 at 224: 12 blocks, width 768, 14x14 grid, one class token."""
    return [SiteInfo(name=f'blocks.{i}.attn', layer=i, num_layers=12, dim=768, num_heads=12, head_dim=64,
                     num_prefix_tokens=1, patch_size=(16, 16), grid=(14, 14)) for i in range(12)]


def tiny_sites(grid: tuple[int, int] = (4, 5), depth: int = 3) -> list[SiteInfo]:
    return [SiteInfo(name=f'b{i}', layer=i, num_layers=depth, dim=C, num_heads=4, head_dim=12, num_prefix_tokens=1,
                     patch_size=(8, 8), grid=grid) for i in range(depth)]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise(vapt: AdaptivePrompt) -> AdaptivePrompt:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in vapt.parameters():
            p.normal_()
    return vapt


def test_parameter_count_matches_the_closed_form():
    """docs/methods.md §3: Np=10, K=2, r=8, 11 adaptive layers on ViT-B/16 -> about 55.6K without the head."""
    vapt = AdaptivePrompt(num_tokens=10)
    vapt.setup(vit_b16_sites())
    D, Np, L, K, r, hw = 768, 10, 11, 2, 8, 13 * 13
    token_wise, conv, projector, norms, static = L * Np * hw + L * Np, L * K * K, 2 * r * D, L * 2 * D, Np * D
    assert (token_wise, conv, projector, norms, static) == (18_700, 44, 12_288, 16_896, 7_680)
    assert count(vapt) == token_wise + conv + projector + norms + static == 55_608
    vpt = DeepPrompt(num_tokens=10)
    vpt.setup(vit_b16_sites())
    assert count(vpt) == 92_160 and count(vapt) < count(vpt)


def test_parameter_count_of_the_options():
    D, Np, L, K, r, hw = 768, 10, 11, 2, 8, 13 * 13
    base = 55_608
    cases = [
        (dict(share_kernel=False), base + L * (D - 1) * K * K),
        (dict(share_projector=False), base + (L - 1) * 2 * r * D),
        (dict(hidden_dim=16), base + 2 * 8 * D),
        (dict(hidden_dim=None), base - 2 * r * D),
        (dict(static_layers=3), 3 * Np * D + (L - 2) * (Np * hw + Np + K * K + 2 * D) + 2 * r * D),
        (dict(kernel_size=3), base - L * Np * (hw - 12 * 12) + L * (9 - 4)),
    ]
    for kw, expected in cases:
        vapt = AdaptivePrompt(num_tokens=10, **kw)
        vapt.setup(vit_b16_sites())
        assert count(vapt) == expected, kw


def test_registered_and_asks_for_an_eval_host():
    vapt = build_prompt(dict(type='AdaptivePrompt', num_tokens=NP))
    assert isinstance(vapt, AdaptivePrompt) and vapt.host_eval is True


@pytest.mark.parametrize('residual', [True, False])
def test_adaptive_prompts_are_zero_at_init(residual):
    vapt = AdaptivePrompt(num_tokens=NP, residual=residual)
    vapt.setup(tiny_sites())
    vapt.train()  # dropout active: still exactly zero
    for site in vapt.sites[1:]:
        p = vapt.generate(site, torch.randn(2, 20, C))
        assert p.shape == (2, NP, C) and torch.equal(p, torch.zeros_like(p))


def reference_layer(vapt: AdaptivePrompt, j: int, patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """VAPT for adaptive layer ``j``, re-stated plainly (eval mode): LN -> grid -> depth-wise conv -> linear -> MLP."""
    B, _, D = patches.shape
    h, w = grid
    norm = vapt.prompt_norm[j]
    x = F.layer_norm(patches, (D,), norm.weight, norm.bias, norm.eps)
    x = x.reshape(B, h, w, D).permute(0, 3, 1, 2)  # (B, D, h, w), token n = row * w + col
    pad = vapt.padding
    x = F.pad(x, (pad, pad, pad, pad))
    K = vapt.kernel_size
    kernel = vapt.prompt_kernel[j][:, 0].expand(D, K, K)  # (D, K, K), one kernel for all channels when shared
    ho, wo = x.shape[2] - K + 1, x.shape[3] - K + 1
    conv = torch.zeros(B, D, ho, wo)
    for u in range(K):
        for v in range(K):
            conv += x[:, :, u:u + ho, v:v + wo] * kernel[None, :, u, v, None, None]
    flat = conv.reshape(B, D, ho * wo)  # (B, D, h'w')
    proj = vapt.token_proj[j]
    p = (flat @ proj.weight.T + proj.bias).transpose(1, 2)  # (B, Np, D)
    if not len(vapt.feature_mlp):
        return p
    mlp = vapt.feature_mlp[0 if vapt.share_projector else j]
    g = torch.relu(p @ mlp.fc1.weight.T) @ mlp.fc2.weight.T
    return p + g if vapt.residual else g


@pytest.mark.parametrize('kw', [
    dict(),
    dict(residual=False),
    dict(share_kernel=False, share_projector=False),
    dict(kernel_size=3, padding=1),
    dict(hidden_dim=None),
])
def test_one_layer_matches_the_maths(kw):
    grid = (4, 5)
    vapt = AdaptivePrompt(num_tokens=NP, **kw)
    vapt.setup(tiny_sites(grid))
    randomise(vapt).eval()
    patches = torch.randn(2, 20, C)
    for j, site in enumerate(vapt.sites[1:]):
        torch.testing.assert_close(vapt.generate(site, patches), reference_layer(vapt, j, patches, grid),
                                   atol=1e-4, rtol=1e-4)


def test_block_input_replaces_slots_with_prompts_from_the_patches():
    vapt = AdaptivePrompt(num_tokens=NP)
    vapt.setup(tiny_sites())
    randomise(vapt).eval()
    s0, s1, s2 = vapt.sites
    x = torch.randn(2, 1 + 20, C)
    y = vapt.block_input(s0, x)  # static prompts inserted after the class token
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 1:1 + NP], vapt.prompt[0].expand(2, -1, -1))
    y = y + 1
    z = vapt.block_input(s1, y)  # slots replaced with prompts generated from y's patches only
    assert torch.equal(z[:, :1], y[:, :1]) and torch.equal(z[:, 1 + NP:], y[:, 1 + NP:])
    torch.testing.assert_close(z[:, 1:1 + NP], vapt.generate(s1, y[:, 1 + NP:]))
    assert vapt.block_output(s2, z).shape == x.shape


def tiny_timm() -> TimmVisionTransformer:
    torch.manual_seed(0)
    return TimmVisionTransformer(img_size=32, patch_size=8, embed_dim=C, depth=3, num_heads=4, num_classes=5).eval()


def test_at_init_vapt_equals_vpt_deep_with_zero_deep_prompts():
    x = torch.randn(2, 3, 32, 32)
    model = tiny_timm()
    seen = []
    for blk in model.blocks:
        blk.norm1.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    _, vapt, _ = attach_prompts(model, dict(type='AdaptivePrompt', num_tokens=NP))
    vapt.eval()
    with torch.no_grad():
        out = model(x)
    for tokens in seen[1:]:  # the generated prompts in the slots of blocks 1 and 2 are exactly zero
        assert torch.equal(tokens[:, 1:1 + NP], torch.zeros(2, NP, C))
    model = tiny_timm()
    _, vpt, _ = attach_prompts(model, dict(type='DeepPrompt', num_tokens=NP))
    vpt.eval()
    with torch.no_grad():
        for p in vpt.prompt:
            p.zero_()
        vpt.prompt[0].copy_(vapt.prompt[0])
        ref = model(x)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


def test_static_layers_option():
    vapt = AdaptivePrompt(num_tokens=NP, static_layers=2)
    vapt.setup(tiny_sites())
    assert len(vapt.prompt) == 2 and vapt.prompt[0].shape == (NP, C) and len(vapt.token_proj) == 1
    none_static = AdaptivePrompt(num_tokens=NP, static_layers=0)
    none_static.setup(tiny_sites())
    assert len(none_static.prompt) == 0 and len(none_static.token_proj) == 3
    model = tiny_timm()
    attach_prompts(model, dict(type='AdaptivePrompt', num_tokens=NP, static_layers=0))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match='static_layers=4 exceeds'):
        AdaptivePrompt(num_tokens=NP, static_layers=4).setup(tiny_sites())


def test_layer_subset_and_removal():
    model = tiny_timm()
    seen = []
    for blk in model.blocks:
        blk.norm1.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    _, vapt, _ = attach_prompts(model, dict(type='AdaptivePrompt', num_tokens=NP, layers=[1, 2]))
    assert vapt.targeted == [1, 2] and len(vapt.token_proj) == 1
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 17, C)
    assert seen == [17, 17 + NP, 17 + NP]


def test_refusals():
    video = [SiteInfo(name='b0', layer=0, num_layers=2, dim=C, num_heads=4, head_dim=12),
             SiteInfo(name='b1', layer=1, num_layers=2, dim=C, num_heads=4, head_dim=12)]
    with pytest.raises(ValueError, match='2-D patch grid'):
        AdaptivePrompt(num_tokens=NP).setup(video)
    with pytest.raises(ValueError, match='does not fit'):
        AdaptivePrompt(num_tokens=NP, kernel_size=6).setup(tiny_sites())
    with pytest.raises(ValueError, match='num_tokens'):
        AdaptivePrompt(num_tokens=0)
    vapt = AdaptivePrompt(num_tokens=NP)
    vapt.setup(tiny_sites())
    with pytest.raises(ValueError, match='patch tokens but the host grid'):
        vapt.generate(vapt.sites[1], torch.randn(2, 19, C))
