"""The diffusers attention site and UNet host: parity with AttnProcessor2_0, hooks against the maths, install/remove,
the replacement guard."""
import pytest
import torch
from torch import nn

from promptkit.attention import attention_reference
from promptkit.core import SiteInfo
from promptkit.strategies.base import PromptStrategy

diffusers = pytest.importorskip('diffusers')
from diffusers.models.attention_processor import Attention, AttnProcessor2_0  # noqa: E402

from promptkit.hosts.diffusers import DiffusersUNetHost  # noqa: E402
from promptkit.sites.diffusers_attention import DiffusersAttentionSite, promptkit_processors  # noqa: E402
from t2i_tiny import tiny_unet  # noqa: E402


class Probe(PromptStrategy):
    """Per-site K/V prompts (T, head_dim) and a linear attn_output branch x·W (C, C), for the site tests only."""

    hooks = ('extra_kv', 'attn_output')

    def __init__(self, layers='all', num_tokens=3, hooks=('extra_kv', 'attn_output'), scale=1.0):
        super().__init__(layers)
        self.num_tokens, self.active_hooks, self.scale = num_tokens, hooks, scale

    def build(self, sites):
        self.pk = nn.ParameterList([nn.Parameter(torch.randn(self.num_tokens, s.head_dim) * self.scale)
                                    for s in sites])
        self.pv = nn.ParameterList([nn.Parameter(torch.randn(self.num_tokens, s.head_dim) * self.scale)
                                    for s in sites])
        self.w = nn.ParameterList([nn.Parameter(torch.randn(s.dim, s.dim) * 0.1 * self.scale) for s in sites])

    def uses(self, hook, site):
        return hook in self.active_hooks and super().uses(hook, site)

    def extra_kv(self, site, q):
        i = self.index(site)
        return self.pk[i], self.pv[i]

    def attn_output(self, site, x, out):
        return x @ self.w[self.index(site)]


def _info(attn, name='attn', cross=False):
    return SiteInfo(name=name, layer=0, num_layers=1, dim=attn.query_dim, num_heads=attn.heads,
                    head_dim=attn.inner_dim // attn.heads, kind='cross' if cross else 'self')


def _site(attn, strategy=None, cross=False):
    info = _info(attn, cross=cross)
    if strategy is not None:
        strategy.setup([info])
    return DiffusersAttentionSite(attn, info, strategy).install()


CASES = {
    'self': (dict(query_dim=32, heads=4, dim_head=8), dict()),
    'cross+mask': (dict(query_dim=32, heads=4, dim_head=8, cross_attention_dim=16), dict(mask=True, enc=True)),
    'self+mask+qk_norm': (dict(query_dim=32, heads=2, dim_head=16, qk_norm='layer_norm'), dict(mask=True)),
    'cross+norm_cross': (dict(query_dim=32, heads=4, dim_head=8, cross_attention_dim=16,
                              cross_attention_norm='layer_norm'), dict(enc=True)),
    '4d+residual+rescale+group_norm': (dict(query_dim=32, heads=2, dim_head=16, norm_num_groups=8,
                                            residual_connection=True, rescale_output_factor=2.0, bias=True),
                                       dict(d4=True)),
    '4d+spatial_norm': (dict(query_dim=32, heads=2, dim_head=16, spatial_norm_dim=4, residual_connection=True),
                        dict(d4=True, temb=True)),
}


def _inputs(opts, B=2, N=12):
    g = torch.Generator().manual_seed(1)
    hs = torch.randn(B, 32, 3, 4, generator=g) if opts.get('d4') else torch.randn(B, N, 32, generator=g)
    enc = torch.randn(B, 5, 16, generator=g) if opts.get('enc') else None
    S = 5 if enc is not None else (hs.shape[1] if hs.dim() == 3 else 12)
    mask = None
    if opts.get('mask'):
        mask = torch.zeros(B, 1, S)
        mask[0, 0, -2:] = -10000.0  # diffusers' additive bias, as UNet2DConditionModel builds it
    temb = torch.randn(B, 4, 3, 4, generator=g) if opts.get('temb') else None
    return hs, enc, mask, temb


@pytest.mark.parametrize('case', list(CASES))
def test_site_equals_attn_processor_2_0(case):
    kwargs, opts = CASES[case]
    torch.manual_seed(0)
    attn = Attention(**kwargs).eval()
    attn.set_processor(AttnProcessor2_0())
    hs, enc, mask, temb = _inputs(opts)
    call = dict(encoder_hidden_states=enc, attention_mask=mask, **({'temb': temb} if temb is not None else {}))
    ref = attn(hs, **call)
    site = _site(attn)
    assert attn.processor is site
    out = attn(hs, **call)
    assert torch.equal(out, ref)
    site.remove()
    assert isinstance(attn.processor, AttnProcessor2_0)


@pytest.mark.parametrize('cross', [False, True])
def test_extra_kv_matches_reference_kernel(cross):
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8, cross_attention_dim=16 if cross else None).eval()
    probe = Probe(hooks=('extra_kv',))
    _site(attn, probe, cross=cross)
    hs, enc, mask, _ = _inputs(dict(enc=cross, mask=True))
    mask = torch.zeros_like(mask)
    mask[0, 0, -2:] = -1e9  # effectively removes sample 0's last two keys
    out = attn(hs, encoder_hidden_states=enc, attention_mask=mask)
    src = enc if cross else hs
    B, N, _ = hs.shape
    q = attn.to_q(hs).view(B, N, 4, 8).transpose(1, 2)
    k = attn.to_k(src).view(B, -1, 4, 8).transpose(1, 2)
    v = attn.to_v(src).view(B, -1, 4, 8).transpose(1, 2)
    refs = []
    for b in range(B):  # the mask as a reference: drop sample 0's masked keys, keep every prompt
        keep = k.shape[2] - 2 if b == 0 else k.shape[2]
        refs.append(attention_reference(q[b:b + 1], k[b:b + 1, :, :keep], v[b:b + 1, :, :keep],
                                        probe.pk[0], probe.pv[0]))
    ref = torch.cat(refs).float().transpose(1, 2).reshape(B, N, 32)
    ref = attn.to_out[0](ref)
    assert torch.allclose(out, ref, atol=1e-5)
    assert not torch.allclose(out, attn.to_out[0](attention_reference(q, k, v).float().transpose(1, 2)
                                                  .reshape(B, N, 32)), atol=1e-3)  # the prompts do something


def test_attn_output_is_added_after_to_out_before_rescale():
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=2, dim_head=16, norm_num_groups=8, residual_connection=True,
                     rescale_output_factor=2.0).eval()
    attn.set_processor(AttnProcessor2_0())
    hs = torch.randn(2, 32, 3, 4)
    ref = attn(hs)
    probe = Probe(hooks=('attn_output',))
    _site(attn, probe)
    out = attn(hs)
    x = attn.group_norm(hs.view(2, 32, 12)).transpose(1, 2)  # what to_q reads: (B, N, C)
    delta = (x @ probe.w[0]).transpose(1, 2).reshape(2, 32, 3, 4)
    assert torch.allclose(out, ref + delta / 2.0, atol=1e-5)


def test_host_records_every_transformer_block_attention():
    unet = tiny_unet()
    infos = DiffusersUNetHost(unet).infos()
    assert [i.name.rsplit('.', 1)[-1] for i in infos] == ['attn1', 'attn2'] * 4
    assert [i.kind for i in infos] == ['self', 'cross'] * 4
    assert [i.dim for i in infos] == [32, 32, 64, 64, 32, 32, 32, 32]
    assert [i.head_dim for i in infos] == [8, 8, 16, 16, 8, 8, 8, 8]
    assert [i.layer for i in infos] == list(range(8)) and {i.num_layers for i in infos} == {8}
    if hasattr(infos[0], 'context_dim'):
        assert [i.context_dim for i in infos] == [None, 32] * 4
        assert {i.layout for i in infos} == {'spatial'}
    assert infos[0].name == 'down_blocks.0.attentions.0.transformer_blocks.0.attn1'


def _unet_inputs(B=2):
    g = torch.Generator().manual_seed(3)
    return torch.randn(B, 4, 16, 16, generator=g), torch.tensor([10, 500]), torch.randn(B, 7, 32, generator=g)


def test_processors_only_on_targeted_modules_and_removed_cleanly():
    unet = tiny_unet().eval()
    x, t, ctx = _unet_inputs()
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    with torch.no_grad():
        ref = unet(x, t, ctx).sample
    host = DiffusersUNetHost(unet)
    probe = Probe(layers=[1, 2, 5])
    probe.setup(host.infos())
    host.attach(probe)
    names = sorted(promptkit_processors(unet))
    assert names == sorted(host.infos()[i].name for i in (1, 2, 5))
    others = {n: p for n, p in unet.attn_processors.items() if not isinstance(p, DiffusersAttentionSite)}
    assert len(others) == 5 and all(isinstance(p, AttnProcessor2_0) for p in others.values())
    assert set(unet.state_dict()) == set(state)
    with torch.no_grad():
        out = unet(x, t, ctx).sample
    host.detach()
    assert promptkit_processors(unet) == {}
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    assert all(torch.equal(v, state[k]) for k, v in unet.state_dict().items())
    with torch.no_grad():
        assert torch.equal(unet(x, t, ctx).sample, ref)
    assert not torch.allclose(out, ref, atol=1e-4)  # the prompts were in the forward


def test_noop_branch_gives_the_stock_unet_output():
    unet = tiny_unet().eval()
    x, t, ctx = _unet_inputs()
    with torch.no_grad():
        ref = unet(x, t, ctx).sample
    host = DiffusersUNetHost(unet)
    probe = Probe(hooks=('attn_output',), scale=0.0)
    probe.setup(host.infos())
    host.attach(probe)
    assert len(promptkit_processors(unet)) == 8
    with torch.no_grad():
        assert torch.equal(unet(x, t, ctx).sample, ref)
        probe.w[3].add_(0.1)
        assert not torch.equal(unet(x, t, ctx).sample, ref)


def test_replacement_guard():
    unet = tiny_unet().eval()
    x, t, ctx = _unet_inputs()
    host = DiffusersUNetHost(unet)
    probe = Probe()
    probe.setup(host.infos())
    host.attach(probe)
    with torch.no_grad():
        unet(x, t, ctx)
        unet.set_attn_processor(AttnProcessor2_0())
        with pytest.raises(RuntimeError, match='set_attn_processor'):
            unet(x, t, ctx)
    host.detach()
    host.attach(probe)
    unet.fuse_qkv_projections()
    with torch.no_grad(), pytest.raises(RuntimeError, match='fuse_qkv_projections'):
        unet(x, t, ctx)


def test_block_hooks_and_foreign_processors_are_refused():
    unet = tiny_unet()
    host = DiffusersUNetHost(unet)

    class Blocky(PromptStrategy):
        hooks = ('block_input',)

    with pytest.raises(TypeError, match='block hooks'):
        host.check(Blocky())

    class Custom(AttnProcessor2_0):
        pass

    unet.set_attn_processor(Custom())
    probe = Probe()
    probe.setup(host.infos())
    with pytest.raises(TypeError, match='set_default_attn_processor'):
        host.attach(probe)


def test_gradients_reach_prompts_and_lora_under_checkpointing():
    pytest.importorskip('peft')
    from peft import LoraConfig
    unet = tiny_unet()
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights='gaussian',
                                target_modules=['to_q', 'to_k', 'to_v', 'to_out.0']))
    unet.enable_gradient_checkpointing()
    unet.train()
    host = DiffusersUNetHost(unet)
    probe = Probe()
    probe.setup(host.infos())
    host.attach(probe)
    x, t, ctx = _unet_inputs()
    unet(x, t, ctx).sample.square().mean().backward()
    lora = {n: p for n, p in unet.named_parameters() if 'lora' in n}
    assert lora and all(p.grad is not None for p in lora.values())
    assert all(p.grad.abs().sum() > 0 for n, p in lora.items() if 'lora_B' in n)  # B = 0 at init: A gets none yet
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in probe.parameters())
    assert all(p.grad is None for n, p in unet.named_parameters() if 'lora' not in n)


@pytest.mark.parametrize('prompt', [dict(type='ApproxPrompt', num_tokens=3, rank=2),
                                    dict(type='AttentionPrompt', num_tokens=3, train_head_norm=False)])
def test_extra_flops_equal_the_closed_forms(prompt):
    """tools/analysis/t2i_flops.py's closed forms against torch's FLOP counter on a tiny UNet."""
    import importlib.util
    from conftest import ROOT
    from promptkit.flops import count_flops
    from promptkit.models import attach_prompts
    spec = importlib.util.spec_from_file_location('t2i_flops', f'{ROOT}/tools/analysis/t2i_flops.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    unet = tiny_unet().eval()  # widths 32 and 64
    x, t, ctx = _unet_inputs(B=1)
    t = t[:1]
    tokens = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, n=n: tokens.__setitem__(n, a[0].shape[1]))
             for n, m in unet.named_modules() if n.endswith(('.attn1', '.attn2'))]
    base = count_flops(unet, x, t, ctx)
    for h in hooks:
        h.remove()
    host, strategy, _ = attach_prompts(unet, prompt)
    strategy.eval().requires_grad_(False)  # not a submodule of the UNet, so count_flops cannot freeze it
    extra = count_flops(unet, x, t, ctx) - base
    form = tool.closed_forms(host.infos(), tokens, 3, 2, ctx.shape[1])[prompt['type']]
    assert extra == form['flops'] > 0
    assert sum(p.numel() for p in strategy.parameters()) == form['params']
