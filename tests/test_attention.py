"""The one kernel against plain maths."""
import pytest
import torch

from promptkit.attention import attention_reference, prompted_attention


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
