"""Image hosts: timm ViTs and open_clip visual towers (default MHA and custom blocks), tiny and CPU-only."""
from __future__ import annotations

import copy
from typing import Callable

import open_clip
import pytest
import timm
import torch
from open_clip.transformer import Attention as OpenCLIPAttention
from open_clip.transformer import Transformer as OpenCLIPTransformer
from open_clip.transformer import VisionTransformer as OpenCLIPVisionTransformer
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
from torch import nn

from promptkit.hosts import OpenCLIPVisualHost, TimmViTHost, find_host
from promptkit.models import attach_prompts
from promptkit.sites import (MultiheadAttentionSite, OpenCLIPAttentionSite, OpenCLIPBlockSite,
                             OpenCLIPCustomBlockSite, TimmAttentionSite, TimmBlockSite)

GRID = 16  # 32x32 images, 8x8 patches


def jitter(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb every parameter so no bias, norm or layer scale is trivially 0 or 1; return the model in eval."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def timm_vit(**kw) -> nn.Module:
    torch.manual_seed(0)
    return jitter(TimmVisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4,
                                        num_classes=5, **kw))


def clip_visual(**kw) -> nn.Module:
    torch.manual_seed(0)
    return jitter(OpenCLIPVisionTransformer(image_size=32, patch_size=8, width=48, layers=2, heads=4, mlp_ratio=4.0,
                                            output_dim=16, **kw))


def clip_visual_seq_first() -> nn.Module:
    """The default tower with its transformer rebuilt sequence-first (open_clip <= 2.2x layout), same weights."""
    visual = clip_visual()
    seq_first = OpenCLIPTransformer(48, 2, 4, 4.0, batch_first=False)
    seq_first.load_state_dict(visual.transformer.state_dict())
    visual.transformer = seq_first.eval()
    return visual


def clip_model_visual() -> nn.Module:
    model = open_clip.model.CLIP(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2,
                                                               head_width=12),
                                 text_cfg=dict(context_length=16, vocab_size=100, width=32, heads=4, layers=1))
    return jitter(model).visual


CUSTOM = dict(block_type='custom', qk_norm=True, scale_heads=True, scale_attn_inner=True, scale_attn=True,
              scale_fc=True, ls_init_value=0.1)
HOSTS: dict[str, Callable[[], nn.Module]] = {
    'timm-token': lambda: timm_vit(),
    'timm-avg-reg-ls-qknorm': lambda: timm_vit(global_pool='avg', reg_tokens=2, init_values=0.1, qk_norm=True),
    'timm-create-model': lambda: jitter(timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32,
                                                          patch_size=8, depth=2, num_classes=5)),
    'clip-default': clip_visual,
    'clip-model-visual': clip_model_visual,
    'clip-seq-first': clip_visual_seq_first,
    'clip-custom': lambda: clip_visual(**CUSTOM),
    'clip-avg-tokens': lambda: clip_visual(pool_type='avg', output_tokens=True),
}
STRATEGIES = {
    'DeepPrompt': dict(type='DeepPrompt', num_tokens=3),
    'ShallowPrompt': dict(type='ShallowPrompt', num_tokens=3),
    'AdaptivePrompt': dict(type='AdaptivePrompt', num_tokens=3),
    'AttentionPrompt': dict(type='AttentionPrompt', num_tokens=2),
}


def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def first(out):
    return out[0] if isinstance(out, tuple) else out


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.blocks if isinstance(model, TimmVisionTransformer) else model.transformer.resblocks


def num_prefix(model: nn.Module) -> int:
    return getattr(model, 'num_prefix_tokens', 1)


def attention_inputs(model: nn.Module) -> list[torch.Tensor]:
    """Record, batch-first, the residual stream each block's attention sub-layer normalises."""
    seen = []
    for blk in blocks(model):
        norm = blk.norm1 if hasattr(blk, 'norm1') else blk.ln_1
        seq_first = hasattr(blk.attn, 'batch_first') and not blk.attn.batch_first
        norm.register_forward_pre_hook(lambda m, a, t=seq_first: seen.append(a[0].transpose(0, 1) if t else a[0]))
    return seen


@pytest.mark.parametrize('make, host_cls, attn_site, block_site', [
    (timm_vit, TimmViTHost, TimmAttentionSite, TimmBlockSite),
    (clip_visual, OpenCLIPVisualHost, MultiheadAttentionSite, OpenCLIPBlockSite),
    (lambda: clip_visual(block_type='custom'), OpenCLIPVisualHost, OpenCLIPAttentionSite, OpenCLIPCustomBlockSite),
])
def test_find_host_keys_sites_on_module_classes(make, host_cls, attn_site, block_site):
    host = find_host(make())
    assert type(host) is host_cls
    assert {(a, b) for _, _, a, _, b in host.plan()} == {(attn_site, block_site)}  # from SITES, by module class
    info = host.infos()[1]
    assert (info.layer, info.num_layers, info.dim, info.num_heads, info.head_dim) == (1, 2, 48, 4, 12)
    assert info.grid == (4, 4) and info.patch_size == (8, 8) and info.num_prefix_tokens == 1


def test_site_infos_follow_the_model():
    reg = find_host(timm_vit(reg_tokens=4, global_pool='avg')).infos()[0]
    assert reg.num_prefix_tokens == 5 and reg.name == 'blocks.0.attn'
    assert find_host(timm_vit(dynamic_img_size=True)).infos()[0].grid is None
    assert find_host(clip_visual()).infos()[0].name == 'transformer.resblocks.0.attn'
    assert TimmViTHost(timm_vit()).roles == {'head_norm': 'norm'}
    assert TimmViTHost(timm_vit(global_pool='avg')).roles == {'head_norm': 'fc_norm'}
    assert OpenCLIPVisualHost(clip_visual()).roles == {'head_norm': 'ln_post'}


@pytest.mark.parametrize('name', HOSTS)
def test_sites_without_prompt_reproduce_the_host(name):
    model, x = HOSTS[name](), images()
    with torch.no_grad():
        ref = model(x)
        host, strategy, roles = attach_prompts(model, None)
        assert strategy is None and roles == ()
        assert all('forward' in vars(blk.attn) for blk in blocks(model))
        out = model(x)
        host.detach()
        back = model(x)
    for r, o, b in zip(*(t if isinstance(t, tuple) else (t,) for t in (ref, out, back))):
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)
        assert torch.equal(b, r)
    assert not any('forward' in vars(m) for m in model.modules())


@pytest.mark.parametrize('strategy', ['DeepPrompt', 'ShallowPrompt', 'AdaptivePrompt'])
@pytest.mark.parametrize('name', HOSTS)
def test_token_prompts_keep_prefix_first_and_leave_before_pooling(name, strategy):
    model, x = HOSTS[name](), images()
    with torch.no_grad():
        ref = model(x)
    n0 = num_prefix(model)
    raw = []  # the embedded tokens entering the first block, before any prompt
    blocks(model)[0].register_forward_pre_hook(lambda m, a: raw.append(a[0]))
    seen = attention_inputs(model)
    _, prompts, _ = attach_prompts(model, STRATEGIES[strategy])
    prompts.eval()
    with torch.no_grad():
        out = model(x)
    assert [t.shape[1] for t in seen] == [n0 + 3 + GRID] * 2
    emb = raw[0].transpose(0, 1) if name == 'clip-seq-first' else raw[0]
    torch.testing.assert_close(seen[0][:, :n0], emb[:, :n0], atol=0, rtol=0)  # class (and register) tokens first
    torch.testing.assert_close(seen[0][:, n0 + 3:], emb[:, n0:], atol=0, rtol=0)  # then the patches, in order
    torch.testing.assert_close(seen[0][:, n0:n0 + 3], prompts.prompt[0].expand(2, -1, -1), atol=0, rtol=0)
    for r, o in zip(*(t if isinstance(t, tuple) else (t,) for t in (ref, out))):
        assert o.shape == r.shape


def test_timm_avg_pool_sees_patches_only():
    model, x = timm_vit(global_pool='avg', reg_tokens=2), images()
    _, prompts, _ = attach_prompts(model, dict(type='AdaptivePrompt', num_tokens=4))
    prompts.eval()  # no prompt dropout, so the two forwards agree
    with torch.no_grad():
        feats = model.forward_features(x)
        out = model(x)
    assert feats.shape == (2, 3 + GRID, 48)  # prompts removed after the last block
    torch.testing.assert_close(out, model.head(model.fc_norm(feats[:, 3:].mean(1))))


def test_open_clip_tokens_and_avg_pool_exclude_prompts():
    model, x = clip_visual(pool_type='avg', output_tokens=True), images()
    attach_prompts(model, dict(type='DeepPrompt', num_tokens=4))
    with torch.no_grad():
        pooled, tokens = model(x)
    assert tokens.shape == (2, GRID, 48) and pooled.shape == (2, 16)
    torch.testing.assert_close(pooled, tokens.mean(1) @ model.proj)


def test_sequence_first_tower_matches_batch_first():
    x = images()
    outs = []
    for model in (clip_visual(), clip_visual_seq_first()):
        torch.manual_seed(3)
        attach_prompts(model, dict(type='DeepPrompt', num_tokens=3))
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('strategy', STRATEGIES)
@pytest.mark.parametrize('name', ['timm-avg-reg-ls-qknorm', 'clip-default', 'clip-custom'])
def test_gradients_reach_exactly_the_strategy_and_roles(name, strategy):
    model, x = HOSTS[name](), images()
    host, prompts, roles = attach_prompts(model, STRATEGIES[strategy], train_roles=('head_norm',))
    assert 'head_norm' in roles
    model.eval()
    prompts.train()
    if strategy == 'AdaptivePrompt':  # leave the zero init so gradients flow past the token-wise projectors
        with torch.no_grad():
            for proj in prompts.token_proj:
                proj.weight.normal_()
    first(model(x)).square().sum().backward()
    role_params = {id(p) for p in host.role_module('head_norm').parameters()}
    assert role_params
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (id(p) in role_params), n
    for n, p in prompts.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_mha_site_matches_torch():
    torch.manual_seed(0)
    for batch_first in (True, False):
        mha = jitter(nn.MultiheadAttention(48, 4, batch_first=batch_first))
        cross = jitter(nn.MultiheadAttention(48, 4, kdim=24, vdim=20, batch_first=batch_first))
        q = torch.randn(2, 5, 48) if batch_first else torch.randn(5, 2, 48)
        kv = torch.randn(2, 7, 48) if batch_first else torch.randn(7, 2, 48)
        k, v = kv[..., :24], kv[..., :20]
        bool_mask = torch.rand(5, 7) > 0.7
        bool_mask[:, 0] = False
        cases = [
            (mha, (q, q, q), {}),
            (mha, (q, kv, kv), dict(attn_mask=torch.randn(5, 7))),
            (mha, (q, kv, kv), dict(attn_mask=bool_mask, key_padding_mask=torch.tensor([[False] * 6 + [True]] * 2))),
            (mha, (q, kv, kv), dict(attn_mask=torch.randn(2 * 4, 5, 7))),
            (cross, (q, k, v), {}),
            (mha, (q[0] if batch_first else q[:, 0],) * 3, {}),  # unbatched (L, E)
        ]
        for module, args, kw in cases:
            with torch.no_grad():
                ref = module(*args, need_weights=False, **kw)[0]
                info = find_host(clip_visual()).infos()[0]
                site = MultiheadAttentionSite(module, info).install()
                out, weights = module(*args, need_weights=False, **kw)
                site.remove()
            assert weights is None
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_open_clip_attention_site_matches_with_mask():
    attn = jitter(OpenCLIPAttention(48, 4, qk_norm=True, scale_heads=True, inner_norm=True))
    x, mask = torch.randn(2, 6, 48), torch.randn(6, 6)
    info = find_host(clip_visual(block_type='custom')).infos()[0]
    with torch.no_grad():
        ref = attn(x, attn_mask=mask)
        site = OpenCLIPAttentionSite(attn, info).install()
        out = attn(x, attn_mask=mask)
        site.remove()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_unsupported_host_options_are_refused():
    with pytest.raises(TypeError, match='scaled_cosine'):
        attach_prompts(clip_visual(scaled_cosine_attn=True), None)
    with pytest.raises(TypeError, match='timm Block only'):
        attach_prompts(timm_vit(block_fn=timm.models.vision_transformer.ResPostBlock), None)
    model = clip_visual()
    attach_prompts(model, None)
    with pytest.raises(NotImplementedError, match='need_weights=False'):
        x = torch.randn(1, 3, 48)
        model.transformer.resblocks[0].attn(x, x, x)
    mha = nn.MultiheadAttention(48, 4, add_bias_kv=True, batch_first=True)
    with pytest.raises(TypeError, match='add_bias_kv'):
        MultiheadAttentionSite(mha, find_host(clip_visual()).infos()[0])
    vit = timm_vit()
    attach_prompts(vit, None)
    with pytest.raises(NotImplementedError, match='is_causal'):
        vit(images(), is_causal=True)
    with pytest.raises(TypeError, match='cannot attach prompts'):
        attach_prompts(copy.deepcopy(nn.Linear(2, 2)), None)
