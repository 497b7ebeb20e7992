"""Approximated Prompt Tuning (``ApproxPrompt``): maths, no-op, detached weights, counts, hosts, placement, FLOPs."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY_TOKENS, TINY_VIT, stacked, tiny_recognizer, train_steps_keep_frozen
from promptkit import PromptedBackbone, SiteInfo
from promptkit.flops import count_flops, flops_breakdown
from promptkit.models import attach_prompts, build_prompt
from promptkit.strategies.approx_prompt import ApproxPrompt
from test_image_hosts import blocks as image_blocks
from test_image_hosts import clip_visual, clip_visual_seq_first, first, images, timm_vit

C = 48  # width of every tiny host here


def vit_b_sites(depth: int = 12) -> list[SiteInfo]:
    return [SiteInfo(name=f'blocks.{i}.attn', layer=i, num_layers=depth, dim=768, num_heads=12, head_dim=64,
                     num_prefix_tokens=1, grid=(14, 14)) for i in range(depth)]


def tiny_sites(depth: int = 2) -> list[SiteInfo]:
    return [SiteInfo(name=f'b{i}', layer=i, num_layers=depth, dim=C, num_heads=4, head_dim=12) for i in range(depth)]


def randomise(apt: ApproxPrompt, seed: int = 0) -> ApproxPrompt:
    """Move away from the init so every term is visible: prompts of std 0.1, W2 != 0, gates s != 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p, up in zip(apt.prompt, apt.prompt_up):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
            up.copy_(0.1 * torch.randn(up.shape, generator=g))
        for s in apt.prompt_scale or ():
            s.copy_(0.2 + 0.2 * torch.rand(s.shape, generator=g))
    return apt


def approx_reference(r: torch.Tensor, out: torch.Tensor, P: torch.Tensor, W1: torch.Tensor, W2: torch.Tensor,
                     s: torch.Tensor | float = 0.0, detach: bool = True, weighted: bool = True) -> torch.Tensor:
    """docs/methods.md §2 step by step: the new attention output (x + E ⊙ w)·exp(s), r and x batch-first (B, N, C).
    ``detach=False`` lets the gradient through w; ``weighted=False`` drops w (both only to show the tests can fail)."""
    keys = P + (P @ W1) @ W2  # P' (M, C)
    A = torch.clamp(r @ keys.T, min=0)  # ReLU, (B, N, M): no scaling, no heads, no softmax
    E = A @ P  # values: the plain prompts
    w = A.max(dim=-1, keepdim=True).values
    w = w.detach() if detach else w
    w = w if weighted else torch.ones_like(w)
    return (out + E * w) * torch.exp(torch.as_tensor(s, dtype=out.dtype))


def layer_params(apt: ApproxPrompt, i: int) -> tuple:
    s = apt.prompt_scale[i] if apt.prompt_scale is not None else 0.0
    return apt.prompt[i], apt.prompt_down[i], apt.prompt_up[i], s


# ---- maths --------------------------------------------------------------------------------------------------------

def reference_videomae_block(block: nn.Module, x: torch.Tensor, params: tuple) -> torch.Tensor:
    """A VideoMAE block written out in float64: x + Attn'(LN1(x)), then the MLP sub-layer. Attn' is softmax
    attention with q/v biases, the output projection, then the Approximated Prompt Tuning formula on r = LN1(x)."""
    dd = dict(dtype=torch.float64)
    attn = block.attn
    x = x.to(**dd)
    r = F.layer_norm(x, (C,), block.norm1.weight.to(**dd), block.norm1.bias.to(**dd), block.norm1.eps)
    B, N, _ = r.shape
    H, d = attn.num_heads, C // attn.num_heads
    bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias]).to(**dd)
    qkv = (r @ attn.qkv.weight.to(**dd).T + bias).reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4)  # (3, B, H, N, d)
    q, k, v = qkv.unbind(0)
    weights = torch.softmax((q * d ** -0.5) @ k.transpose(-2, -1), dim=-1)  # (B, H, N, N)
    o = (weights @ v).transpose(1, 2).reshape(B, N, C) @ attn.proj.weight.to(**dd).T + attn.proj.bias.to(**dd)
    h = x + approx_reference(r, o, *(torch.as_tensor(p).to(**dd) for p in params))
    return h + block.mlp.to(torch.float64)(F.layer_norm(h, (C,), block.norm2.weight.to(**dd),
                                                         block.norm2.bias.to(**dd), block.norm2.eps))


def test_videomae_block_matches_the_written_out_maths():
    torch.manual_seed(0)
    model = PromptedBackbone(dict(TINY_VIT), prompt=dict(type='ApproxPrompt', num_tokens=5)).eval()
    apt = randomise(model.prompt)
    x = torch.randn(2, TINY_TOKENS, C)
    with torch.no_grad():
        for i, block in enumerate(model.backbone.blocks):
            params = tuple(torch.as_tensor(p).detach().clone() for p in layer_params(apt, i))
            ref = reference_videomae_block(copy.deepcopy(block), x, params)
            out = block(x)
            torch.testing.assert_close(out, ref.float(), atol=2e-5, rtol=1e-4)
            # Every term matters: without the gate, without W2, or with w = 1 the result is different.
            P, W1, W2, s = params
            for wrong in ((P, W1, W2, 0.0), (P, W1, torch.zeros_like(W2), s), (P, W1, W2, s, True, False)):
                bad = reference_videomae_block(copy.deepcopy(block), x, wrong)
                assert not torch.allclose(out.double(), bad, atol=1e-4)


def test_hook_is_the_formula_for_both_gate_settings():
    torch.manual_seed(0)
    r, out = torch.randn(2, 7, C), torch.randn(2, 7, C)
    for train_scale in (True, False):
        apt = ApproxPrompt(num_tokens=6, train_scale=train_scale)
        apt.setup(tiny_sites())
        randomise(apt)
        for i, site in enumerate(apt.sites):
            with torch.no_grad():
                new = out + apt.attn_output(site, r, out)
                ref = approx_reference(r, out, *layer_params(apt, i))
            torch.testing.assert_close(new, ref, atol=1e-6, rtol=1e-5)


def test_dropout_on_the_activations_also_feeds_the_weights():
    """Official order: A = Dropout(ReLU(r·P'ᵀ)); E = A·P and w = max A both use the dropped A."""
    apt = ApproxPrompt(num_tokens=8, dropout=0.5, train_scale=False)
    apt.setup(tiny_sites(1))
    randomise(apt)
    r, out = torch.randn(2, 7, C), torch.zeros(2, 7, C)
    P, W1, W2 = layer_params(apt, 0)[:3]
    torch.manual_seed(5)
    delta = apt.attn_output(apt.sites[0], r, out).detach()
    torch.manual_seed(5)
    A = F.dropout(torch.relu(r @ (P + P @ W1 @ W2).T), 0.5, training=True).detach()
    torch.testing.assert_close(delta, (A @ P.detach()) * A.max(-1, keepdim=True).values)
    apt.eval()
    torch.testing.assert_close(apt.attn_output(apt.sites[0], r, out).detach(),
                               approx_reference(r, out, P, W1, W2).detach())


def test_weights_are_detached_in_the_gradient():
    """dL/dθ equals a reference in which w = max A is a constant, and differs from one where w is not."""
    apt = ApproxPrompt(num_tokens=6)
    apt.setup(tiny_sites(1))
    apt = randomise(apt).double()
    g = torch.Generator().manual_seed(3)
    r, out, target = (torch.randn(2, 7, C, generator=g, dtype=torch.float64) for _ in range(3))
    names = ('prompt', 'prompt_down', 'prompt_up', 'prompt_scale')

    def grads(fn) -> list[torch.Tensor]:
        params = [getattr(apt, n)[0] for n in names]
        loss = ((fn() - target) ** 2).sum()
        return torch.autograd.grad(loss, params)

    P, W1, W2, s = layer_params(apt, 0)
    with torch.no_grad():  # w as a constant: computed once, outside the graph
        w = torch.relu(r @ (P + P @ W1 @ W2).T).max(dim=-1, keepdim=True).values

    def constant_w() -> torch.Tensor:
        A = torch.relu(r @ (P + P @ W1 @ W2).T)
        return (out + (A @ P) * w) * s.exp()

    ours = grads(lambda: out + apt.attn_output(apt.sites[0], r, out))
    constant = grads(constant_w)
    attached = grads(lambda: approx_reference(r, out, P, W1, W2, s, detach=False))
    for n, a, b in zip(names, ours, constant):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9, msg=n)
    for n, a, c in zip(names[:3], ours, attached):  # the gate does not reach w, so its gradient agrees either way
        assert not torch.allclose(a, c, atol=1e-8), n


# ---- initialisation, counts, registry ---------------------------------------------------------------------------

def test_init_and_shapes():
    torch.manual_seed(0)
    apt = ApproxPrompt()
    apt.setup(vit_b_sites())
    assert (apt.num_tokens, apt.rank) == (200, 4) and apt.dropout.p == 0.0
    P, W1, W2, s = (stacked(getattr(apt, n)) for n in ('prompt', 'prompt_down', 'prompt_up', 'prompt_scale'))
    assert P.shape == (12, 200, 768) and abs(P.std().item() - 0.02) < 1e-3
    assert W1.shape == (12, 768, 4) and abs(W1.std().item() - 1.0) < 0.02
    assert W2.shape == (12, 4, 768) and not W2.any()
    assert s.shape == (12,) and not s.any()
    assert torch.equal(apt.keys(3), apt.prompt[3])  # P' = P at initialisation


@pytest.mark.parametrize('train_scale', [True, False])
@pytest.mark.parametrize('M,layers,L', [(200, 'all', 12), (50, 'all', 12), (8, 4, 4), (3, [0, 5, -1], 3)])
def test_parameter_count_closed_form(train_scale, M, layers, L):
    apt = ApproxPrompt(num_tokens=M, layers=layers, train_scale=train_scale)
    apt.setup(vit_b_sites())
    k, Cb = 4, 768
    assert sum(p.numel() for p in apt.parameters()) == L * (M * Cb + 2 * k * Cb + int(train_scale))
    assert all(p.requires_grad for p in apt.parameters())


def test_published_parameter_counts():
    """README: ViLT 1.92M (12 modules) and METER 3.83M (24 modules), both with M = 200, k = 4, C = 768."""
    vilt = ApproxPrompt()
    vilt.setup(vit_b_sites())
    assert sum(p.numel() for p in vilt.parameters()) == 1_916_940
    meter = ApproxPrompt(train_scale=False)
    meter.setup(vit_b_sites(24))
    assert round(sum(p.numel() for p in meter.parameters()) / 1e6, 2) == 3.83
    vilt_code = ApproxPrompt(num_tokens=50)  # the released ViLT code's M
    vilt_code.setup(vit_b_sites())
    assert round(sum(p.numel() for p in vilt_code.parameters()) / 1e6, 2) == 0.53


def test_registered_and_validated():
    assert isinstance(build_prompt(dict(type='ApproxPrompt', num_tokens=3)), ApproxPrompt)
    for kw, match in ((dict(num_tokens=0), 'num_tokens'), (dict(rank=0), 'rank'), (dict(dropout=1.0), 'dropout')):
        with pytest.raises(ValueError, match=match):
            ApproxPrompt(**kw)
    with pytest.raises(ValueError, match='outside the model'):
        ApproxPrompt(layers=[12]).setup(vit_b_sites())


# ---- on the hosts ---------------------------------------------------------------------------------------------------

def test_zero_prompts_give_the_host_output_exactly(clip):
    torch.manual_seed(0)
    from promptkit.models.prompted_backbone import build_host_model
    host = build_host_model(dict(TINY_VIT))
    with torch.no_grad():
        expected = host(clip)  # mmaction2's own attention
        model = PromptedBackbone(host, prompt=dict(type='ApproxPrompt', num_tokens=5)).eval()
        randomise(model.prompt).noop_()
        zero = model(clip)
        with model.prompts_disabled():
            disabled = model(clip)
        for p in model.prompt.prompt:
            p.normal_(std=0.1)
        prompted = model(clip)
    assert torch.equal(zero, disabled)  # the same SDPA path: bit for bit
    torch.testing.assert_close(zero, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(prompted, expected, atol=1e-3)


def test_untargeted_layers_are_untouched():
    torch.manual_seed(0)
    model = PromptedBackbone(dict(TINY_VIT), prompt=dict(type='ApproxPrompt', num_tokens=4, layers=[1])).eval()
    randomise(model.prompt)
    assert model.prompt.targeted == [1] and stacked(model.prompt.prompt).shape == (1, 4, C)
    x = torch.randn(2, TINY_TOKENS, C)
    with torch.no_grad():
        first_attn, second_attn = model.backbone.blocks[0].attn(x), model.backbone.blocks[1].attn(x)
        with model.prompts_disabled():
            assert torch.equal(first_attn, model.backbone.blocks[0].attn(x))
            assert not torch.allclose(second_attn, model.backbone.blocks[1].attn(x), atol=1e-3)


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.blocks if hasattr(model, 'blocks') else image_blocks(model)


def _attention_input(module: nn.Module, args: tuple) -> torch.Tensor:
    """The attention's input r, batch-first, as the host passes it (sequence-first nn.MultiheadAttention too)."""
    r = args[0]
    return r.transpose(0, 1) if getattr(module, 'batch_first', True) is False else r


def formula_hooks(model: nn.Module, apt: ApproxPrompt) -> None:
    """Apply the formula to the output of each targeted attention of ``model`` through plain forward hooks, on the
    host's own attention code (independent of promptkit's sites)."""
    for i, layer in enumerate(apt.targeted):
        attn = blocks(model)[layer].attn
        params = tuple(torch.as_tensor(p).detach().clone() for p in layer_params(apt, i))

        def hook(module, args, output, params=params):
            out = output[0] if isinstance(output, tuple) else output
            seq_first = getattr(module, 'batch_first', True) is False
            out_bf = out.transpose(0, 1) if seq_first else out
            new = approx_reference(_attention_input(module, args), out_bf, *params)
            new = new.transpose(0, 1) if seq_first else new
            return (new, *output[1:]) if isinstance(output, tuple) else new

        attn.register_forward_hook(hook)


def tiny_videomae() -> nn.Module:
    from promptkit.models.prompted_backbone import build_host_model
    torch.manual_seed(0)
    return build_host_model(dict(TINY_VIT)).eval()


HOSTS = {
    'videomae': (tiny_videomae, lambda: torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))),
    'timm': (lambda: timm_vit(global_pool='avg', reg_tokens=2, qk_norm=True), images),
    'clip-mha': (clip_visual, images),
    'clip-mha-seq-first': (clip_visual_seq_first, images),
    'clip-custom': (lambda: clip_visual(block_type='custom', qk_norm=True, scale_heads=True,
                                        scale_attn_inner=True, ls_init_value=0.1), images),
}


@pytest.mark.parametrize('name', HOSTS)
@pytest.mark.parametrize('train_scale', [True, False])
def test_hosts_match_the_formula_on_their_own_attention(name, train_scale):
    make, inputs = HOSTS[name]
    model, x = make(), inputs()
    reference = copy.deepcopy(model)
    _, apt, _ = attach_prompts(model, dict(type='ApproxPrompt', num_tokens=5, layers=[0, -1],
                                           train_scale=train_scale))
    randomise(apt)
    formula_hooks(reference, apt)
    with torch.no_grad():
        out, ref, bare = first(model(x)), first(reference(x)), first(_bare(model)(x))
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(out, bare, atol=1e-3)  # the branch does change the output


def _bare(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every taken-over forward removed: the host as built."""
    clone = copy.deepcopy(model)
    for m in clone.modules():
        vars(m).pop('forward', None)
        m._forward_pre_hooks.clear()  # the copied site guard, which would (rightly) refuse the removed sites
    return clone


@pytest.mark.parametrize('name', ['videomae', 'timm', 'clip-custom'])
def test_branch_sits_before_the_output_dropout(name):
    """The official module runs after ``proj`` and before ``proj_drop``: with the output dropout at p = 1 (train
    mode) the whole attention output, branch included, is zero."""
    model = HOSTS[name][0]()
    _, apt, _ = attach_prompts(model, dict(type='ApproxPrompt', num_tokens=5))
    randomise(apt)
    attn = blocks(model)[0].attn
    drop = attn.out_drop if name == 'clip-custom' else attn.proj_drop
    drop.p = 1.0
    attn.train()
    r = torch.randn(2, 9, C)
    with torch.no_grad():
        assert not torch.equal(apt.attn_output(apt.sites[0], r, torch.zeros(2, 9, C)), torch.zeros(2, 9, C))
        assert torch.equal(attn(r), torch.zeros(2, 9, C))


@pytest.mark.parametrize('name', ['timm', 'clip-mha', 'clip-custom'])
def test_image_hosts_gradients_reach_exactly_the_strategy(name):
    make, inputs = HOSTS[name]
    model = make()
    # 16 prompts: with few, ReLU(r·P'ᵀ) can be all zero at the one class token a pooled output reads in the last block
    _, apt, roles = attach_prompts(model, dict(type='ApproxPrompt', num_tokens=16))
    assert roles == ()
    randomise(apt).train()  # W2 != 0, else W1 gets no gradient
    first(model(inputs())).square().sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is None, n
    for n, p in apt.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_trainable_set_and_gradients_on_the_recognizer():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='ApproxPrompt', num_tokens=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f'backbone.prompt.{n}.{i}' for n in ('prompt', 'prompt_down', 'prompt_up', 'prompt_scale')
                         for i in range(3)} | {'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}
    randomise(model.backbone.prompt)
    feats = model.extract_feat(torch.randn(2, 1, 3, 4, 32, 32))[0]
    F.cross_entropy(model.cls_head(feats), torch.tensor([1, 3])).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable
    frozen_gate = tiny_recognizer(prompt=dict(type='ApproxPrompt', num_tokens=4, train_scale=False))
    assert not any('prompt_scale' in n for n, _ in frozen_gate.named_parameters())
    assert frozen_gate.backbone.num_trainable() + 3 == model.backbone.num_trainable()  # one gate per layer


def test_frozen_backbone_bit_identical_after_training():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='ApproxPrompt', num_tokens=4))
    before = train_steps_keep_frozen(model)
    for n, p in model.backbone.prompt.named_parameters():  # W1 moves from step 2 on, once W2 != 0
        assert not torch.equal(p, before[n]), n


def test_low_precision_activations():
    apt = ApproxPrompt(num_tokens=4)
    apt.setup(tiny_sites(1))
    randomise(apt)
    r, out = torch.randn(2, 5, C, dtype=torch.bfloat16), torch.randn(2, 5, C, dtype=torch.bfloat16)
    delta = apt.attn_output(apt.sites[0], r, out)
    assert delta.dtype == torch.bfloat16
    ref = approx_reference(r.float(), out.float(), *layer_params(apt, 0)) - out.float()
    torch.testing.assert_close(delta.float(), ref, atol=0.05, rtol=0.05)


# ---- FLOPs ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('layers,L', [('all', 3), ([1], 1)])
def test_extra_flops_closed_form(layers, L):
    """What ``promptkit.flops`` counts (mult-add = 2): matrix products only. Per targeted layer and forward:
    r·P'ᵀ is 2·B·N·M·C, A·P is 2·B·N·M·C, and P' = P + (P·W1)·W2 is 2·M·C·k + 2·M·k·C (once per forward,
    independent of the batch). ReLU, dropout, the max, the products with w and exp(s) and the additions are
    elementwise or reductions: not counted. So extra = L·(4·B·N·M·C + 4·M·k·C); all other ops are unchanged."""
    M, k = 5, 4
    prompt = dict(type='ApproxPrompt', num_tokens=M, rank=k, layers=layers)
    apt, bare = (PromptedBackbone(dict(TINY_VIT), prompt=p).eval() for p in (prompt, None))
    for B in (1, 2):
        clip = torch.randn(B, 3, 4, 32, 32)
        extra = count_flops(apt, clip) - count_flops(bare, clip)
        assert extra == L * (4 * B * TINY_TOKENS * M * C + 4 * M * k * C)
    clip = torch.randn(1, 3, 4, 32, 32)
    ops_apt, ops_bare = flops_breakdown(apt, clip), flops_breakdown(bare, clip)
    assert ops_apt.pop('aten.mm') - ops_bare.pop('aten.mm', 0) == L * (4 * TINY_TOKENS * M * C + 4 * M * k * C)
    assert ops_apt == ops_bare  # projections, attention and the patch conv unchanged
    assert count_flops(apt.train(), clip) == count_flops(apt.eval(), clip)
