"""The contract every registered strategy keeps on every registered host whose hooks it fits, generated from the
registries: it builds; its no-op setting (or, for methods without one, the disabled prompts) gives the host's
output; gradients reach exactly its parameters and the roles it trains; save -> load round-trips onto a fresh copy
of the base; detaching gives the host back bit-identical.

A new strategy is covered once it is registered and sets ``example`` (its smallest config); a new host once
``HOST_MODELS`` has a tiny model for it (``test_every_registered_host_has_a_tiny_model`` fails until then). The
module also registers a host of its own, for an attention class defined here, as a user would.
"""
from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_VIT
from torch import Tensor, nn

from promptkit import PromptedBackbone, SiteInfo
from promptkit.artifacts import load_prompts, save_prompts
from promptkit.hosts import Host, find_host
from promptkit.registry import HOSTS, PROMPTS, SITES
from promptkit.sites import ForwardSite


# ---- a host of the user's own, registered in this module -------------------------------------------------------
class ToyAttention(nn.Module):
    """A user's attention class: fused qkv, no bias, its own forward."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class ToyBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm, self.attn, self.mlp = nn.LayerNorm(dim), ToyAttention(dim, heads), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm(x))
        return x + self.mlp(x)


class ToyModel(nn.Module):
    """Class token + 16 patch tokens of width 24, three blocks, the normalised mean of the patch tokens out."""

    def __init__(self, dim: int = 24, depth: int = 3) -> None:
        super().__init__()
        self.embed, self.cls = nn.Linear(8, dim), nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(ToyBlock(dim, 4) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(x)], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 1:].mean(1))


@SITES.register_module()
class ToyAttentionSite(ForwardSite):
    targets = (ToyAttention,)
    hook_names = ('extra_kv', 'attn_output')

    def forward(self, x: Tensor) -> Tensor:
        from promptkit import prompted_attention
        m, info = self.module, self.info
        B, N, C = x.shape
        q, k, v = m.qkv(x).reshape(B, N, 3, info.num_heads, info.head_dim).permute(2, 0, 3, 1, 4)
        extra = self.strategy.extra_kv(info, q) if 'extra_kv' in self.active else (None, None)
        out = m.proj(prompted_attention(q, k, v, *extra).transpose(1, 2).reshape(B, N, C))
        if 'attn_output' in self.active:
            out = out + self.strategy.attn_output(info, x, out)
        return out


@SITES.register_module()
class ToyBlockSite(ForwardSite):
    targets = (ToyBlock,)
    hook_names = ('block_input', 'pre_mlp', 'block_output')

    def forward(self, x: Tensor) -> Tensor:
        b, s, info = self.module, self.strategy, self.info
        if 'block_input' in self.active:
            x = s.block_input(info, x)
        x = x + b.attn(b.norm(x))
        if 'pre_mlp' in self.active:
            x = s.pre_mlp(info, x)
        x = x + b.mlp(x)
        return s.block_output(info, x) if 'block_output' in self.active else x


@HOSTS.register_module()
class ToyHost(Host):
    name = 'toy model (tests/test_contract.py)'
    targets = (ToyModel,)
    roles = {'head_norm': 'norm'}

    def records(self):
        for i, block in enumerate(self.model.blocks):
            yield (SiteInfo(name=f'blocks.{i}.attn', block=f'blocks.{i}', layer=i, num_layers=len(self.model.blocks),
                            dim=24, num_heads=4, head_dim=6, num_prefix_tokens=1, grid=(4, 4), patch_size=(2, 2)),
                   block.attn, block)


# ---- tiny models, one per registered host -----------------------------------------------------------------------
def _videomae() -> nn.Module:
    from promptkit.models.prompted_backbone import build_host_model
    return build_host_model(dict(TINY_VIT))


def _timm() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, num_classes=5)


def _open_clip(**kw) -> nn.Module:
    from open_clip.transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, width=48, layers=2, heads=4, mlp_ratio=4.0, output_dim=16,
                             **kw)


def _unet() -> nn.Module:
    """A tiny diffusers UNet (widths 32 and 64, 8 sites) called with one tensor: its text states come from it."""
    from diffusers import UNet2DConditionModel

    class OneInputUNet(UNet2DConditionModel):
        def forward(self, x: Tensor) -> Tensor:  # x (B, 4, 8, 8) -> text states (B, 8, 32)
            return super().forward(x, 10, encoder_hidden_states=x.reshape(len(x), 8, 32)).sample

    from t2i_tiny import TINY_UNET
    return OneInputUNet(**dict(TINY_UNET, sample_size=8))


def _frames(tower: str) -> nn.Module:
    from promptkit import FrameTower
    if tower == 'timm':
        return FrameTower(tower='timm', model_name='vit_tiny_patch16_224', img_size=32, patch_size=8, embed_dim=48,
                          depth=2, num_heads=4)
    return FrameTower(tower='open_clip', model_name='tiny-frames-contract', model_cfg=dict(
        embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2, head_width=12),
        text_cfg=dict(context_length=16, vocab_size=100, width=32, heads=4, layers=1)))


#: Host class name -> [(label, tiny model factory, input factory)].
HOST_MODELS: dict[str, list[tuple[str, Callable[[], nn.Module], Callable[[], Tensor]]]] = {
    'MMActionViTHost': [('videomae', _videomae, lambda: torch.randn(2, 3, 4, 32, 32))],
    'TimmViTHost': [('timm', _timm, lambda: torch.randn(2, 3, 32, 32))],
    'OpenCLIPVisualHost': [('open_clip', _open_clip, lambda: torch.randn(2, 3, 32, 32)),
                           ('open_clip-custom', lambda: _open_clip(block_type='custom'),
                            lambda: torch.randn(2, 3, 32, 32))],
    'DiffusersUNetHost': [('diffusers-unet', _unet, lambda: torch.randn(2, 4, 8, 8))],
    'FrameTowerHost': [('frames-timm', lambda: _frames('timm'), lambda: torch.randn(2, 3, 4, 32, 32)),
                       ('frames-open_clip', lambda: _frames('open_clip'), lambda: torch.randn(2, 3, 4, 32, 32))],
    'ToyHost': [('toy', ToyModel, lambda: torch.randn(2, 16, 8))],
}


def jittered(make: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """The tiny model with every weight moved off its initial value (no trivially zero bias or unit norm)."""
    torch.manual_seed(seed)
    model = make()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def _cases() -> list:
    out = []
    for strategy_name, strategy_cls in sorted(PROMPTS.module_dict.items()):
        example = getattr(strategy_cls, 'example', None)
        if example is None:
            continue
        for host_name in sorted(HOSTS.module_dict):
            for label, make, inputs in HOST_MODELS.get(host_name, []):
                out.append(pytest.param(strategy_name, make, inputs, id=f'{strategy_name}-{label}'))
    return out


def _fits(strategy: nn.Module, host: Host) -> bool:
    if any(h not in host.supported_hooks for h in strategy.hooks):
        return False
    return all(strategy.unfit(site) is None for site in host.infos())


def _build(name: str, make, inputs):
    cfg = dict(type=name, **PROMPTS.get(name).example)
    host = find_host(jittered(make))
    from promptkit.models import build_prompt
    if not _fits(build_prompt(cfg), host):
        pytest.skip(f'{name} does not fit {host.name}')
    return cfg


def _output(y) -> Tensor:
    return y[0] if isinstance(y, tuple) else y


def test_every_registered_host_has_a_tiny_model():
    assert sorted(HOSTS.module_dict) == sorted(HOST_MODELS), 'add a tiny model for every registered host'


def test_every_promptkit_strategy_has_an_example():
    ours = [n for n, c in PROMPTS.module_dict.items() if c.__module__.startswith('promptkit.')]
    assert ours and all(getattr(PROMPTS.get(n), 'example', None) is not None for n in ours)


@pytest.mark.parametrize('name, make, inputs', _cases())
def test_contract(name: str, make, inputs, tmp_path) -> None:
    cfg = _build(name, make, inputs)
    x = inputs()
    base = jittered(make)
    with torch.no_grad():
        expected = _output(base(x))

    # builds, on an untouched copy of the base
    model = PromptedBackbone(copy.deepcopy(base), prompt=cfg).eval()
    strategy = model.prompt
    assert strategy.sites, 'targets no site'

    # the no-op setting (or the disabled prompts) gives the host's output
    with torch.no_grad():
        try:
            strategy.noop_()
            torch.testing.assert_close(_output(model(x)), expected, atol=1e-5, rtol=1e-4)
        except NotImplementedError:
            pass
        with model.prompts_disabled():
            torch.testing.assert_close(_output(model(x)), expected, atol=1e-5, rtol=1e-4)
        for p in strategy.parameters():  # off the init / no-op, so every parameter is live
            p.add_(0.2 * torch.randn_like(p))
        prompted = _output(model(x))
    assert not torch.allclose(prompted, expected, atol=1e-4), 'the strategy changes nothing'

    # gradients reach exactly the strategy's parameters and the roles it trains
    roles = {id(p) for r in model.train_roles for p in model.host.role_module(r).parameters()}
    trained = {id(p) for p in strategy.parameters()} | roles
    assert {id(p) for p in model.parameters() if p.requires_grad} == trained
    _output(model(x)).square().sum().backward()
    for n, p in model.named_parameters():
        if id(p) in trained:
            assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient reaches {n}'
        else:
            assert p.grad is None, f'{n} is frozen but gets a gradient'

    # save -> load onto a fresh copy of the base
    folder = str(tmp_path / 'prompts')
    save_prompts(model, folder)
    fresh = PromptedBackbone(copy.deepcopy(base), prompt=cfg).eval()
    load_prompts(fresh, folder)
    with torch.no_grad():
        torch.testing.assert_close(_output(fresh(x)), _output(model(x)), atol=0, rtol=0)

    # detach: the host back, bit-identical
    host = model.detach_prompts()
    assert not any('forward' in vars(m) for m in host.modules()) and not host._forward_pre_hooks
    with torch.no_grad():
        assert torch.equal(_output(host(x)), expected)
    assert all(torch.equal(a, b) for a, b in zip(host.state_dict().values(), base.state_dict().values()))


def test_user_host_is_found_and_refuses_what_it_cannot_run():
    host = find_host(ToyModel())
    assert isinstance(host, ToyHost) and [i.name for i in host.infos()] == [f'blocks.{i}.attn' for i in range(3)]
    with pytest.raises(TypeError, match='cannot attach prompts to a .*Linear.*registered hosts understand'):
        find_host(nn.Linear(2, 2))


def test_a_replaced_site_fails_loudly_at_the_next_forward():
    """Another library patching a module promptkit took over must not silently run the host unprompted."""
    model = PromptedBackbone(jittered(ToyModel), prompt=dict(type='AttentionPrompt', num_tokens=2))
    x = torch.randn(2, 16, 8)
    model(x)
    attn = model.backbone.blocks[1].attn
    attn.forward = ToyAttention.forward.__get__(attn)  # what a second patcher would do
    with pytest.raises(RuntimeError, match=r'site at blocks\.1\.attn was replaced'):
        model(x)
    del attn.forward
    model.detach_prompts()
    model(x)  # detached: no guard left


def test_targets_choose_sites_by_layer_kind_and_module_path():
    from promptkit.models import attach_prompts
    _, s, _ = attach_prompts(ToyModel(), dict(type='ApproxPrompt', num_tokens=2, modules=r'blocks\.[12]\.attn'))
    assert [i.name for i in s.sites] == ['blocks.1.attn', 'blocks.2.attn'] and len(s.prompt) == 2
    with pytest.raises(ValueError, match=r"kinds=\('cross',\).*matched no site.*kinds \['self'\].*blocks\.0\.attn"):
        attach_prompts(ToyModel(), dict(type='ApproxPrompt', num_tokens=2, kinds=('cross',)))
    with pytest.raises(ValueError, match='kinds must list'):
        attach_prompts(ToyModel(), dict(type='ApproxPrompt', num_tokens=2, kinds=('both',)))


def test_unknown_prompt_type_suggests_the_closest_names():
    from promptkit.models import build_prompt
    with pytest.raises(KeyError, match="did you mean 'AttentionPrompt'"):
        build_prompt(dict(type='AttentionPromt', num_tokens=2))


def test_vapt_prompt_norms_use_the_default_epsilon():
    """The official code builds its prompt LayerNorms with PyTorch's default eps (1e-5)."""
    from promptkit.models import attach_prompts
    _, vapt, _ = attach_prompts(ToyModel(), dict(type='AdaptivePrompt', num_tokens=2))
    x = torch.randn(2, 16, 24)
    for norm in vapt.prompt_norm:
        assert norm.eps == nn.LayerNorm(24).eps == 1e-5
        torch.testing.assert_close(norm(x), F.layer_norm(x, (24,), norm.weight, norm.bias))
