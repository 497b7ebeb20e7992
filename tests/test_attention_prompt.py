"""Attention Prompt Tuning on the mmaction2 VideoMAE host: maths, trainable set, gradients, freezing."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_TOKENS, stacked, tiny_recognizer, train_steps_keep_frozen
from promptkit import AttentionPrompt, PromptedBackbone, SiteInfo


def vit_b_sites(depth: int = 12) -> list:
    return [SiteInfo(name=f'blocks.{i}.attn', layer=i, num_layers=depth, dim=768, num_heads=12, head_dim=64,
                     patch_size=(16, 16), tubelet_size=2) for i in range(depth)]


def reference_apt_attention(attn, x, pk, pv, scale_k, scale_v):
    """APT attention written out from docs/methods.md §1, independent of promptkit's site and kernel."""
    B, N, C = x.shape
    H = attn.num_heads
    d = C // H
    bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])
    qkv = (x @ attn.qkv.weight.T + bias).reshape(B, N, 3, H, d)
    q, k, v = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
    pk = pk * torch.maximum(scale_k, torch.ones_like(scale_k))[:, None]  # (T, d)
    pv = pv * torch.maximum(scale_v, torch.ones_like(scale_v))[:, None]
    k = torch.cat([k, pk.expand(B, H, -1, -1)], dim=2)  # same prompts for every head and sample
    v = torch.cat([v, pv.expand(B, H, -1, -1)], dim=2)
    w = torch.softmax((q * d ** -0.5) @ k.transpose(-2, -1), dim=-1)  # (B, H, N, N+T)
    out = (w @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


def test_apt_attention_matches_reference(tiny_vit):
    torch.manual_seed(0)
    model = PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=5)).eval()
    strategy = model.prompt
    with torch.no_grad():
        for scale in strategy.prompt_scale:
            scale.uniform_(0.5, 2.0)  # exercise both sides of max(s, 1)
    x = torch.randn(2, TINY_TOKENS, 48)
    for i, block in enumerate(model.backbone.blocks):
        out = block.attn(x)
        ref = reference_apt_attention(block.attn, x, strategy.prompt_k[i], strategy.prompt_v[i],
                                      strategy.prompt_scale[i][0], strategy.prompt_scale[i][1])
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_unprompted_layers_and_disabled_prompts_give_the_host_output(tiny_vit, clip):
    torch.manual_seed(0)
    from promptkit.models.prompted_backbone import build_host_model
    host = build_host_model(tiny_vit)
    reference = host.__class__.forward  # the class forward, never replaced
    with torch.no_grad():
        model = PromptedBackbone(host, prompt=dict(type='AttentionPrompt', num_tokens=4, start=1, end=1)).eval()
        with model.prompts_disabled():
            disabled = model(clip)
        prompted = model(clip)
        model.detach_prompts()  # every module gets its own forward back: mmaction2's hand-written attention
        expected = reference(host, clip)
        for blk in host.blocks:
            assert 'forward' not in vars(blk.attn)
    torch.testing.assert_close(disabled, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(prompted, expected, atol=1e-4)


def test_prompt_init_and_shapes():
    torch.manual_seed(0)
    s = AttentionPrompt(num_tokens=400)
    s.setup(vit_b_sites())
    bound = math.sqrt(6 / (3 * 16 * 16 + 64))
    pk, pv, scale = stacked(s.prompt_k), stacked(s.prompt_v), stacked(s.prompt_scale)
    assert pk.shape == pv.shape == (12, 400, 64)
    assert scale.shape == (12, 2, 400) and bool((scale == 1).all())
    assert pk.abs().max() <= bound and pk.abs().max() > 0.95 * bound
    assert abs(pv.mean().item()) < 0.01


@pytest.mark.parametrize('T', [1, 2, 400])
def test_trainable_count_vit_b(T):
    s = AttentionPrompt(num_tokens=T)
    s.setup(vit_b_sites())
    L, d = 12, 64
    assert sum(p.numel() for p in s.parameters()) == 2 * L * T * d + 2 * L * T == 1560 * T


def test_layer_range_and_validation():
    s = AttentionPrompt(num_tokens=3, start=2, end=5)
    s.setup(vit_b_sites())
    assert s.targeted == [2, 3, 4, 5] and len(s.prompt_k) == 4
    same = AttentionPrompt(num_tokens=3, layers=[2, 3, 4, 5])
    same.setup(vit_b_sites())
    assert [x.name for x in same.sites] == [x.name for x in s.sites]
    with pytest.raises(ValueError, match='not both'):
        AttentionPrompt(num_tokens=3, layers=[1], start=2)
    with pytest.raises(ValueError, match='outside the model'):
        AttentionPrompt(num_tokens=3, start=0, end=12).setup(vit_b_sites())
    with pytest.raises(ValueError, match='positive'):
        AttentionPrompt(num_tokens=0)
    with pytest.raises(ValueError, match='start'):
        AttentionPrompt(num_tokens=2, start=5, end=3)


def test_reparam_gradient_follows_torch_maximum():
    """Half the gradient at the tie s = 1 (initialisation), none below 1, all above: torch.maximum's rule."""
    s = AttentionPrompt(num_tokens=3, dropout=0.0)
    s.setup(vit_b_sites(1))
    with torch.no_grad():
        s.prompt_scale[0][0] = torch.tensor([1.0, 0.5, 2.0])
    q = torch.zeros(1)
    pk, _ = s.extra_kv(s.sites[0], q)
    pk.sum().backward()
    g = s.prompt_scale[0].grad[0]
    row_sums = s.prompt_k[0].detach().sum(-1)
    torch.testing.assert_close(g, torch.stack([0.5 * row_sums[0], torch.tensor(0.0), row_sums[2]]))


def test_dropout_masks_independent_for_k_and_v_and_shared_over_batch():
    torch.manual_seed(0)
    s = AttentionPrompt(num_tokens=50, dropout=0.5, reparam=False)
    s.setup(vit_b_sites(1))
    pk, pv = s.extra_kv(s.sites[0], torch.zeros(1))
    assert pk.shape == (50, 64)  # one (T, d) tensor: broadcast to every sample and head by the kernel
    assert not torch.equal(pk == 0, pv == 0)
    s.eval()
    pk, pv = s.extra_kv(s.sites[0], torch.zeros(1))
    assert torch.equal(pk, s.prompt_k[0])


def test_trainable_set_and_gradients(tiny_vit):
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='AttentionPrompt', num_tokens=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f'backbone.prompt.{n}.{i}' for n in ('prompt_k', 'prompt_v', 'prompt_scale')
                         for i in range(3)} | {'backbone.backbone.fc_norm.weight', 'backbone.backbone.fc_norm.bias',
                         'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}
    feats = model.extract_feat(torch.randn(2, 1, 3, 4, 32, 32))[0]
    loss = F.cross_entropy(model.cls_head(feats), torch.tensor([1, 3]))
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable
    off = tiny_recognizer(prompt=dict(type='AttentionPrompt', num_tokens=4, train_head_norm=False))
    assert not any(p.requires_grad for n, p in off.named_parameters() if 'fc_norm' in n)


def test_frozen_backbone_bit_identical_after_training():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='AttentionPrompt', num_tokens=4))
    before = train_steps_keep_frozen(model, weight_decay=1e-5)
    assert not torch.equal(model.backbone.prompt.prompt_k[0], before['prompt_k.0'])


def test_linear_probe_and_full_finetune_are_config_choices():
    probe = tiny_recognizer(prompt=None, train_roles=('head_norm',))
    assert {n for n, p in probe.named_parameters() if p.requires_grad} == {
        'backbone.backbone.fc_norm.weight', 'backbone.backbone.fc_norm.bias',
        'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}
    full = tiny_recognizer(prompt=None, full_finetune=True)
    assert all(p.requires_grad for p in full.parameters())
    # All four variants run the attention through promptkit's site.
    for m in (probe, full):
        assert all('forward' in vars(b.attn) for b in m.backbone.backbone.blocks)


def test_expected_trainable_guard(tiny_vit):
    with pytest.raises(ValueError, match='expected_trainable'):
        PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=2), expected_trainable=1)


def test_inference_sees_updates_made_through_data(tiny_vit, clip):
    """EMA hooks write weights through ``.data``, which bumps no version counter: the no-grad output must follow
    such an update of the prompts and of VideoMAE's q/v biases exactly as the grad-enabled output does."""
    torch.manual_seed(0)
    model = PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=3)).eval()
    with torch.no_grad():
        model(clip)  # a first inference, as a cache would fill
    model.prompt.prompt_k[0].data.mul_(3)
    model.backbone.blocks[0].attn.v_bias.data.add_(1.0)
    with torch.no_grad():
        inference = model(clip)
    torch.testing.assert_close(inference, model(clip).detach(), atol=0, rtol=0)
    model.prompt.prompt_k[0].data.div_(3)
    model.backbone.blocks[0].attn.v_bias.data.sub_(1.0)
    with torch.no_grad():
        assert not torch.allclose(model(clip), inference)


def test_videomae_qkv_bias_in_the_graph_when_trained(tiny_vit, clip):
    model = PromptedBackbone(tiny_vit, prompt=None).eval()
    model.backbone.blocks[0].attn.q_bias.requires_grad_(True)
    model(clip).sum().backward()
    assert model.backbone.blocks[0].attn.q_bias.grad is not None
