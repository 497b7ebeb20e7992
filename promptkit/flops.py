"""Forward FLOPs that include attention, with ``torch.utils.flop_counter``.

Convention: one multiply-add = 2 FLOPs (torch's ``FlopCounterMode``; MMEngine / fvcore count it as 1, i.e. MACs).
What is counted: matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``), convolutions and attention. What is
not: elementwise ops (bias adds, activations, dropout, scaling), softmax, norms, reductions, concatenation. For a
transformer that is the usual "GFLOPs" of papers; the uncounted part is O(tokens · width) per layer.

Hand-written here because no library does it (torch 2.14): ``FlopCounterMode`` has formulas for the CUDA SDPA
kernels (flash, efficient, cuDNN) but none for the CPU fused kernel
``aten._scaled_dot_product_flash_attention_for_cpu`` (nor its backward, nor the ``_fused_attention_overrideable``
pair other backends use), so on CPU ``F.scaled_dot_product_attention`` counts 0 FLOPs. The fused
``nn.MultiheadAttention`` path (``aten._native_multi_head_attention``, taken in ``eval()`` under ``no_grad``) also
counts 0 for the whole layer. MMEngine's counter skips SDPA with a warning. ``SDPA_FLOP_FORMULAS`` fills those
gaps with the same formulas torch uses for its CUDA kernels, so a count does not depend on the device or the
attention backend.

Examples:
    >>> from promptkit.flops import count_flops
    >>> count_flops(model.eval(), torch.randn(1, 3, 16, 224, 224))  # one clip, FLOPs (mult-add = 2)
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['sdpa_flops', 'sdpa_backward_flops', 'SDPA_FLOP_FORMULAS', 'flop_counter', 'count_flops',
           'flops_breakdown', 'install_sdpa_flop_formulas']

aten = torch.ops.aten


def sdpa_flops(q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...]) -> int:
    """FLOPs of one attention forward: q·kᵀ then attn·v, 2·B·H·N·S·(d_qk + d_v) (= 4·B·H·N·S·d when equal).

    Args:
        q_shape: (B, H, N, d_qk).
        k_shape: (B, H_kv, S, d_qk); H_kv may divide H (grouped-query attention).
        v_shape: (B, H_kv, S, d_v).
    """
    B, H, N, d_qk = q_shape
    S, d_v = k_shape[-2], v_shape[-1]
    return 2 * B * H * N * S * (d_qk + d_v)


def sdpa_backward_flops(grad_out_shape: tuple[int, ...], q_shape: tuple[int, ...], k_shape: tuple[int, ...],
                        v_shape: tuple[int, ...]) -> int:
    """FLOPs of one fused attention backward, as torch counts its CUDA kernels: the scores recomputed, then the
    gradients of attn·v (2 products) and of q·kᵀ (2 products): 2·B·H·N·S·(3·d_qk + 2·d_v)."""
    B, H, N, d_qk = q_shape
    S, d_v = k_shape[-2], v_shape[-1]
    return 2 * B * H * N * S * (3 * d_qk + 2 * d_v)


def _sdpa_forward(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flops(q_shape, k_shape, v_shape)


def _sdpa_backward(grad_out_shape, q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flops(grad_out_shape, q_shape, k_shape, v_shape)


def _native_mha(q_shape, k_shape, v_shape, embed_dim, num_heads, *args, out_shape=None, **kwargs) -> int:
    """``nn.MultiheadAttention``'s fused path (batch-first): in-projections, attention, out-projection."""
    B, N, C = q_shape
    S = k_shape[1]
    proj = 2 * B * C * C * (2 * N + 2 * S)  # q and out projections over N tokens, k and v over S
    return proj + sdpa_flops((B, num_heads, N, C // num_heads), (B, num_heads, S, C // num_heads),
                             (B, num_heads, S, C // num_heads))


def _available(names_and_formulas: dict[str, Callable]) -> dict[Any, Callable]:
    """Map the op packets this torch build has (and torch's registry lacks) to their formulas."""
    from torch.utils.flop_counter import flop_registry
    out = {}
    for name, formula in names_and_formulas.items():
        try:
            packet = getattr(aten, name)
        except (AttributeError, RuntimeError):  # op not in this build
            continue
        if packet not in flop_registry:
            out[packet] = formula
    return out


#: Formulas (shape-based, in ``custom_mapping`` form) for the attention ops torch's counter leaves at 0.
SDPA_FLOP_FORMULAS: dict[Any, Callable] = _available({
    '_scaled_dot_product_flash_attention_for_cpu': _sdpa_forward,
    '_scaled_dot_product_flash_attention_for_cpu_backward': _sdpa_backward,
    '_scaled_dot_product_fused_attention_overrideable': _sdpa_forward,
    '_scaled_dot_product_fused_attention_overrideable_backward': _sdpa_backward,
    '_native_multi_head_attention': _native_mha,
})


def flop_counter(display: bool = False, depth: int = 2) -> FlopCounterMode:
    """A ``FlopCounterMode`` that also counts the attention kernels above; use it to count backward passes too.

    Examples:
        >>> with flop_counter() as fc:
        ...     model(x).sum().backward()
        >>> fc.get_total_flops()
    """
    return FlopCounterMode(display=display, depth=depth, custom_mapping=SDPA_FLOP_FORMULAS)


@contextlib.contextmanager
def _params_frozen(model: nn.Module | Callable) -> Iterator[None]:
    """Turn ``requires_grad`` off on the model's parameters for the block, then restore it.

    Works around a crash of torch's ``ModuleTracker`` (which ``FlopCounterMode`` always uses): under
    ``no_grad``, a view of a trainable parameter (``self.prompt_k[i]``) still has ``requires_grad=True`` but no
    ``grad_fn``, and passing it to a submodule (the prompt's ``nn.Dropout``) makes the tracker's backward hook
    fail with "Expected gradient function to be set".
    """
    module = model if isinstance(model, nn.Module) else getattr(model, '__self__', None)
    params = [p for p in module.parameters() if p.requires_grad] if isinstance(module, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _run(model: nn.Module | Callable, inputs: tuple, kwargs: dict) -> FlopCounterMode:
    with torch.no_grad(), _params_frozen(model), flop_counter() as counter:
        model(*inputs, **kwargs)
    return counter


def count_flops(model: nn.Module | Callable, *inputs: Any, **kwargs: Any) -> int:
    """Forward FLOPs (one multiply-add = 2) of ``model(*inputs, **kwargs)``, attention included.

    Runs the forward once under ``torch.no_grad()``, in the mode the model is in (call ``.eval()`` first for
    inference cost; dropout is elementwise and never counted, so the count is the same either way unless a
    train-mode branch changes the shapes).

    Args:
        model: A module or any callable.
        *inputs: Positional inputs, e.g. a (B, C, T, H, W) clip batch.
        **kwargs: Keyword inputs.

    Returns:
        The FLOPs for the whole batch given.
    """
    return _run(model, inputs, kwargs).get_total_flops()


def flops_breakdown(model: nn.Module | Callable, *inputs: Any, by: str = 'op', **kwargs: Any) -> dict[str, int]:
    """Forward FLOPs per operator (``by='op'``: ``'aten.addmm'``, ``'aten._scaled_dot_product_...'``) or per
    module (``by='module'``: FlopCounterMode's dotted module names, ``'Global'`` for the total)."""
    counts = _run(model, inputs, kwargs).get_flop_counts()
    if by == 'op':
        return {str(op): n for op, n in counts.get('Global', {}).items()}
    if by == 'module':
        return {name: sum(ops.values()) for name, ops in counts.items()}
    raise ValueError(f"flops_breakdown: by must be 'op' or 'module', got {by!r}")


def install_sdpa_flop_formulas() -> None:
    """Register ``SDPA_FLOP_FORMULAS`` in torch's global registry, so that code building its own
    ``FlopCounterMode`` (e.g. open_clip's profiler) counts CPU attention too. Idempotent."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula
    for packet, formula in SDPA_FLOP_FORMULAS.items():
        if packet not in flop_registry:
            register_flop_formula(packet)(formula)
