"""VPT baselines on the VideoMAE host: token insertion, replacement and removal."""
import torch

from promptkit import DeepPrompt, PromptedBackbone, SiteInfo
from promptkit.core import resolve_layers

import pytest


def record_lengths(model):
    """Token count entering each block."""
    lengths = []
    for blk in model.backbone.blocks:
        blk.register_forward_pre_hook(lambda m, a: lengths.append(a[0].shape[1]))
    return lengths


def test_deep_prompts_replace_slots_and_leave_before_pooling(tiny_vit, clip):
    torch.manual_seed(0)
    model = PromptedBackbone(tiny_vit, prompt=dict(type='DeepPrompt', num_tokens=3)).eval()
    seen = []
    for blk in model.backbone.blocks:  # what attention sees in each block
        blk.attn.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    out = model(clip)
    assert seen == [32 + 3] * 3 and out.shape == (2, 48)
    # The pooled feature is the mean over the 32 patch tokens only: recompute it by hand.
    x = model.backbone.patch_embed(clip)[0] + model.backbone.pos_embed
    for i, blk in enumerate(model.backbone.blocks):
        p = model.prompt.prompt[i].expand(2, -1, -1)
        x = torch.cat([p, x[:, 3:]] if i else [p, x], dim=1)
        x = blk.__class__.forward(blk, x)
    torch.testing.assert_close(out, model.backbone.fc_norm(x[:, 3:].mean(1)), atol=1e-5, rtol=1e-4)


def test_shallow_inserts_once(tiny_vit, clip):
    model = PromptedBackbone(tiny_vit, prompt=dict(type='ShallowPrompt', num_tokens=2))
    assert model.prompt.prompt.shape == (1, 2, 48)
    assert model(clip).shape == (2, 48)


def test_deep_prompt_count_and_init():
    sites = [SiteInfo(name=f'b{i}', layer=i, num_layers=12, dim=768, num_heads=12, head_dim=64) for i in range(12)]
    s = DeepPrompt(num_tokens=10)
    s.setup(sites)
    assert s.prompt.numel() == 12 * 10 * 768
    assert s.prompt.abs().max() <= (6 / (3 * 16 * 16 + 768)) ** 0.5


def test_resolve_layers():
    assert resolve_layers('all', 4) == [0, 1, 2, 3]
    assert resolve_layers(2, 4) == [2, 3]
    assert resolve_layers([0, -1], 4) == [0, 3]
    for bad in (0, 5, [4], [], 'some'):
        with pytest.raises(ValueError):
            resolve_layers(bad, 4)


def test_host_eval_keeps_the_frozen_host_in_eval_mode(tiny_vit):
    from promptkit.registry import PROMPTS

    @PROMPTS.register_module(force=True)
    class EvalHostDeepPrompt(DeepPrompt):
        host_eval = True

    model = PromptedBackbone(tiny_vit, prompt=dict(type='EvalHostDeepPrompt', num_tokens=2)).train()
    assert model.prompt.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    plain = PromptedBackbone(tiny_vit, prompt=dict(type='DeepPrompt', num_tokens=2)).train()
    assert plain.backbone.training
