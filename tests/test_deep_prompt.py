"""VPT baselines on the VideoMAE host: token insertion, replacement and removal."""
import pytest
import torch
from conftest import stacked

from promptkit import DeepPrompt, PromptedBackbone, SiteInfo
from promptkit.core import resolve_layers


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
    assert len(model.prompt.prompt) == 1 and model.prompt.prompt[0].shape == (2, 48)
    assert model(clip).shape == (2, 48)


def test_deep_prompt_count_and_init():
    sites = [SiteInfo(name=f'b{i}', layer=i, num_layers=12, dim=768, num_heads=12, head_dim=64) for i in range(12)]
    s = DeepPrompt(num_tokens=10)
    s.setup(sites)
    assert sum(p.numel() for p in s.prompt.parameters()) == 12 * 10 * 768
    assert stacked(s.prompt).abs().max() <= (6 / (3 * 16 * 16 + 768)) ** 0.5


@pytest.mark.parametrize('prompt', [dict(type='DeepPrompt', num_tokens=6, dropout=0.5),
                                    dict(type='AdaptivePrompt', num_tokens=6, dropout=0.5, static_layers=1)])
def test_prompt_dropout_draws_one_mask_per_sample(prompt):
    """As the official VPT / VAPT code (dropout on the prompts expanded to the batch): two samples of one batch get
    different masks, and the inserted tokens equal dropout(P.expand(B, T, C)) under the same seed."""
    from promptkit.models import build_prompt
    sites = [SiteInfo(name=f'b{i}', layer=i, num_layers=2, dim=48, num_heads=4, head_dim=12, num_prefix_tokens=1,
                      grid=(4, 4)) for i in range(2)]
    s = build_prompt(prompt)
    s.setup(sites)
    s.train()
    x = torch.randn(2, 17, 48)
    torch.manual_seed(7)
    y = s.block_input(s.sites[0], x)[:, 1:7]  # (B, T, C) inserted prompts
    torch.manual_seed(7)
    expected = torch.nn.functional.dropout(s.prompt[0].expand(2, -1, -1), 0.5, training=True)
    torch.testing.assert_close(y, expected, atol=0, rtol=0)
    assert not torch.equal(y[0] == 0, y[1] == 0)


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
