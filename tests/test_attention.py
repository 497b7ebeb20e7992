"""The one kernel against plain maths."""
import pytest
import torch

from promptkit.attention import attention_impl, attention_reference, prompted_attention


@pytest.mark.parametrize('extra_shape', [None, (5, 8), (3, 5, 8), (2, 3, 5, 8)])
def test_kernel_matches_reference(extra_shape):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    ek = ev = None
    if extra_shape is not None:
        ek, ev = torch.randn(extra_shape), torch.randn(extra_shape)
    out = prompted_attention(q, k, v, ek, ev, scale=0.3)
    ref = attention_reference(q, k, v, ek, ev, scale=0.3)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_reference_is_softmax_over_concatenated_keys():
    """The reference itself, checked by hand on one query: weights over [k; extra_k] sum to one."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    ek, ev = torch.randn(2, 4), torch.randn(2, 4)
    logits = torch.cat([k[0, 0], ek]) @ q[0, 0, 0] * 0.5
    w = logits.exp() / logits.exp().sum()
    expected = w @ torch.cat([v[0, 0], ev])
    torch.testing.assert_close(attention_reference(q, k, v, ek, ev, scale=0.5)[0, 0, 0].float(), expected)


def test_mask_is_extended_to_the_extra_keys():
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    ek, ev = torch.randn(3, 8), torch.randn(3, 8)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., -1] = False  # hide the last data key
    out = prompted_attention(q, k, v, ek, ev, attn_mask=mask)
    ref = attention_reference(q, k[:, :, :3], v[:, :, :3], ek, ev)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_extra_kv_must_come_in_pairs():
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match='together'):
        prompted_attention(q, q, q, torch.randn(1, 4), None)


# ---- the split implementation (fused pass over the data keys + fused pass over the prompts, merged by LSE) ----

def _qkv_views(B=2, H=3, N=11, d=8, dtype=torch.float64, seed=0):
    """q, k, v laid out as the sites make them: views of one (B, N, 3, H, d) projection output."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(B, N, 3, H, d, generator=g, dtype=dtype, requires_grad=True)
    return base, base.permute(2, 0, 3, 1, 4).unbind(0)


@pytest.mark.parametrize('extra_shape', [(5, 8), (3, 5, 8), (2, 3, 5, 8)])
def test_split_matches_reference_and_its_gradients(extra_shape):
    base, (q, k, v) = _qkv_views()
    g = torch.Generator().manual_seed(1)
    ek, ev = (torch.randn(extra_shape, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    with attention_impl('split'):
        out = prompted_attention(q, k, v, ek, ev, scale=0.4)
    ref = attention_reference(q, k, v, ek, ev, scale=0.4)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    dout = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(out, (base, ek, ev), dout)
    want = torch.autograd.grad(ref, (base, ek, ev), dout)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_split_gradcheck():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ek, ev = (torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def f(*args):
        with attention_impl('split'):
            return prompted_attention(*args)
    assert torch.autograd.gradcheck(f, (q, k, v, ek, ev))


def test_split_bf16_as_close_to_the_reference_as_concat():
    _, (q, k, v) = _qkv_views(B=1, H=2, N=64, d=16, dtype=torch.float32)
    ek, ev = torch.randn(2, 6, 16)
    ref = attention_reference(q, k, v, ek, ev)
    errors = {}
    for impl in ('concat', 'split'):
        with attention_impl(impl):
            out = prompted_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), ek, ev)
        assert out.dtype == torch.bfloat16
        errors[impl] = (out.double() - ref).abs().max().item()
    assert errors['split'] < 2 * errors['concat'] + 1e-3, errors


def test_split_refuses_what_it_cannot_run_and_impl_is_scoped():
    q = torch.randn(1, 1, 4, 8)
    ek = torch.randn(2, 8)
    with attention_impl('split'):
        with pytest.raises(ValueError, match='dropout'):
            prompted_attention(q, q, q, ek, ek, dropout_p=0.1)
        with pytest.raises(ValueError, match='mask'):
            prompted_attention(q, q, q, ek, ek, attn_mask=torch.ones(1, 1, 4, 4, dtype=torch.bool))
        with attention_impl('concat'):  # nested: the inner choice wins, then the outer one is restored
            prompted_attention(q, q, q, ek, ek, dropout_p=0.1)
        with pytest.raises(ValueError, match='dropout'):
            prompted_attention(q, q, q, ek, ek, dropout_p=0.1)
    prompted_attention(q, q, q, ek, ek, dropout_p=0.1)  # back to 'auto' = concat
    with pytest.raises(ValueError, match="unknown attention impl 'fast'"):
        with attention_impl('fast'):
            pass


def test_split_in_a_model_gives_concat_output_and_gradients_and_keeps_less_for_backward(tiny_vit, clip):
    """The APT model trains the same with either implementation; split keeps no K/V copies for backward."""
    from promptkit.analysis import saved_activation_bytes
    from promptkit.models import PromptedBackbone
    torch.manual_seed(0)
    model = PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=6, dropout=0.0))
    results, saved = {}, {}
    for impl in ('concat', 'split'):
        model.zero_grad()
        with attention_impl(impl):
            out = model(clip)
            out.square().sum().backward()
            saved[impl] = saved_activation_bytes(lambda: model(clip), model)
        results[impl] = (out, [p.grad.clone() for p in model.parameters() if p.requires_grad])
    torch.testing.assert_close(results['split'][0], results['concat'][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results['split'][1], results['concat'][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # concat keeps copies [k; pk] and [v; pv] per layer, split only views of the projection output it keeps anyway
    # plus its (B, H, T, d) prompts: 2 * B * N * C floats less per layer.
    B, N, C, depth = clip.shape[0], 32, tiny_vit['embed_dims'], tiny_vit['depth']
    assert saved['concat'] - saved['split'] >= 0.9 * depth * 2 * B * N * C * 4, saved
