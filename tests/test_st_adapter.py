"""ST-Adapter on the mmaction2 VideoMAE host: maths, identity at init, trainable set, gradients, freezing, FLOPs."""
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_VIT, tiny_recognizer, train_steps_keep_frozen
from promptkit import PromptedBackbone, SiteInfo
from promptkit.flops import count_flops
from promptkit.models import attach_prompts
from promptkit.strategies.st_adapter import STAdapter  # also registers it in PROMPTS

BOTH = ('attn', 'mlp')


def vit_b_sites(depth: int = 12, grid=(8, 14, 14), prefix: int = 0) -> list:
    """ViT-B-shaped sites: width 768, 12 heads; by default a 16-frame VideoMAE clip (tubelet 2) at 224."""
    return [SiteInfo(name=f'blocks.{i}.attn', layer=i, num_layers=depth, dim=768, num_heads=12, head_dim=64,
                     num_prefix_tokens=prefix, patch_size=(16, 16), tubelet_size=2, grid=grid)
            for i in range(depth)]


def small_sites(grid=(6, 2, 3), prefix: int = 0, dim: int = 8, depth: int = 1) -> list:
    return [SiteInfo(name=f'b{i}', layer=i, num_layers=depth, dim=dim, num_heads=2, head_dim=dim // 2,
                     num_prefix_tokens=prefix, patch_size=(8, 8), tubelet_size=2, grid=grid) for i in range(depth)]


def randomise(strategy: torch.nn.Module) -> None:
    """Non-zero values everywhere, so no term of the adapter hides behind the zero init."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in strategy.parameters():
            p.normal_(0, 0.3)


def reference_adapter(adapter, z, grid, activation=None):
    """One adapter written out from docs/methods.md §4, with the convolution as explicit loops over kernel offsets on
    a zero-padded (t, h, w) grid; independent of ``nn.Conv3d`` and of promptkit's reshapes."""
    B, N, _ = z.shape
    t, h, w = grid
    Ca = adapter.fc1.out_features
    u = (z @ adapter.fc1.weight.T + adapter.fc1.bias).reshape(B, t, h, w, Ca)  # token n = (ti·h + hi)·w + wi
    kt, kh, kw = adapter.conv.kernel_size
    pt, ph, pw = kt // 2, kh // 2, kw // 2
    padded = torch.zeros(B, t + 2 * pt, h + 2 * ph, w + 2 * pw, Ca)
    padded[:, pt:pt + t, ph:ph + h, pw:pw + w] = u
    weight = adapter.conv.weight[:, 0]  # (Ca, kt, kh, kw): one filter per channel (depth-wise)
    v = adapter.conv.bias.expand(B, t, h, w, Ca).clone()
    for i in range(kt):
        for j in range(kh):
            for k in range(kw):  # out[ti] = sum_i weight[i] * in[ti + i - pt] (cross-correlation, as torch)
                v = v + padded[:, i:i + t, j:j + h, k:k + w] * weight[:, i, j, k]
    if activation == 'gelu':
        v = F.gelu(v)
    return v.reshape(B, N, Ca) @ adapter.fc2.weight.T + adapter.fc2.bias


def reference_block(block, x, grid, attn_adapter=None, mlp_adapter=None, activation=None):
    """mmaction2's VideoMAE block (no layer scale, no drop path) with the adapters on the residual stream."""
    if attn_adapter is not None:
        x = x + reference_adapter(attn_adapter, x, grid, activation)
    x = x + type(block.attn).forward(block.attn, block.norm1(x))  # the class forward: mmaction2's own attention
    if mlp_adapter is not None:
        x = x + reference_adapter(mlp_adapter, x, grid, activation)
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize('positions,kernel,activation', [
    (BOTH, (3, 1, 1), None), (('mlp',), (3, 1, 1), None), (('attn',), (3, 3, 3), 'gelu')])
def test_block_matches_reference(positions, kernel, activation):
    torch.manual_seed(0)
    vit = dict(TINY_VIT, num_frames=8)  # t = 4 time steps, 4 x 4 patches
    model = PromptedBackbone(vit, prompt=dict(type='STAdapter', width=6, positions=positions, kernel_size=kernel,
                                              activation=activation)).eval()
    s = model.prompt
    randomise(s)
    grid = (4, 4, 4)
    assert s.sites[0].grid == grid
    x = torch.randn(2, 64, 48)
    with torch.no_grad():
        for i, block in enumerate(model.backbone.blocks):
            ref = reference_block(block, x, grid, s.adapters['attn'][i] if 'attn' in positions else None,
                                  s.adapters['mlp'][i] if 'mlp' in positions else None, activation)
            torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-4)


def test_prefix_tokens_bypass_and_hooks_follow_positions():
    torch.manual_seed(0)
    s = STAdapter(width=5, positions='attn')
    assert s.hooks == ('block_input',)
    s.setup(small_sites(prefix=2))
    randomise(s)
    site = s.sites[0]
    x = torch.randn(3, 2 + 6 * 2 * 3, 8)
    with torch.no_grad():
        out = s.block_input(site, x)
        ref = x[:, 2:] + reference_adapter(s.adapters['attn'][0], x[:, 2:], site.grid)
    assert torch.equal(out[:, :2], x[:, :2])  # class / register tokens untouched
    torch.testing.assert_close(out[:, 2:], ref, atol=1e-6, rtol=1e-5)
    assert s.uses('block_input', site) and not s.uses('pre_mlp', site)
    assert STAdapter(positions=('mlp', 'attn')).positions == BOTH  # canonical order, stable state_dict names


@pytest.mark.parametrize('activation', [None, 'gelu'])
def test_temporal_locality(activation):
    """With kernel (3, 1, 1), changing the tokens of time step 2 changes the adapter's output at times 1..3 only,
    and only at the same spatial position when one patch is changed."""
    torch.manual_seed(0)
    t, h, w = 6, 2, 3
    s = STAdapter(width=5, positions=BOTH, activation=activation)
    s.setup(small_sites(grid=(t, h, w)))
    randomise(s)
    site = s.sites[0]
    x = torch.randn(2, t * h * w, 8)
    y = x.clone()
    y[:, 2 * h * w:3 * h * w] += torch.randn(2, h * w, 8)  # every patch of time step 2
    z = x.clone()
    z[:, 2 * h * w + 4] += torch.randn(2, 8)  # one patch (row 1, column 1) of time step 2
    with torch.no_grad():
        base = s.pre_mlp(site, x).reshape(2, t, h * w, 8)
        frame = s.pre_mlp(site, y).reshape(2, t, h * w, 8)
        patch = s.pre_mlp(site, z).reshape(2, t, h * w, 8)
    changed = [(frame[:, i] != base[:, i]).any().item() for i in range(t)]
    assert changed == [False, True, True, True, False, False]
    diff = (patch != base).any(-1).any(0)  # (t, h·w)
    expected = torch.zeros(t, h * w, dtype=torch.bool)
    expected[1:4, 4] = True
    assert torch.equal(diff, expected)


def per_adapter(C: int, Ca: int, k: int = 3) -> int:
    return 2 * C * Ca + (k + 2) * Ca + C


@pytest.mark.parametrize('positions,layers,kernel,n', [
    (('mlp',), 'all', (3, 1, 1), 12), (BOTH, 'all', (3, 1, 1), 24), (BOTH, 4, (3, 1, 1), 8),
    (('mlp',), [0, 5], (3, 3, 3), 2)])
def test_trainable_count_vit_b(positions, layers, kernel, n):
    s = STAdapter(width=384, positions=positions, kernel_size=kernel, layers=layers)
    s.setup(vit_b_sites())
    k = kernel[0] * kernel[1] * kernel[2]
    assert sum(p.numel() for p in s.parameters()) == n * per_adapter(768, 384, k)
    assert per_adapter(768, 384) == 592_512  # docs/methods.md §4: 7.11M for 12 adapters, 14.22M for 24
    if layers == 4:
        assert s.targeted == [8, 9, 10, 11]  # official adapter_layers=4: the last 4 blocks


def test_zero_init_and_default_init():
    torch.manual_seed(0)
    s = STAdapter()
    s.setup(vit_b_sites(depth=1))
    a = s.adapters['mlp'][0]
    assert s.positions == ('mlp',) and s.width == 384 and s.kernel_size == (3, 1, 1)
    assert a.conv.groups == 384 and a.conv.padding == (1, 0, 0) and a.conv.weight.shape == (384, 1, 3, 1, 1)
    for p in (a.conv.weight, a.conv.bias, a.fc1.bias, a.fc2.bias):
        assert not p.any()
    bound = 768 ** -0.5  # PyTorch's default Linear init: U(±1/sqrt(fan_in))
    assert 0.9 * bound < a.fc1.weight.abs().max() <= bound
    assert 0.9 * 384 ** -0.5 < a.fc2.weight.abs().max() <= 384 ** -0.5


def test_init_equals_host_bit_for_bit():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='STAdapter', width=8, positions=BOTH)).eval()
    bare = tiny_recognizer(prompt=None).eval()
    missing, unexpected = bare.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith('backbone.prompt.') for k in unexpected)
    x = torch.randn(2, 1, 3, 4, 32, 32)
    with torch.no_grad():
        adapted = model.cls_head(model.extract_feat(x)[0])
        host = bare.cls_head(bare.extract_feat(x)[0])
        with model.backbone.prompts_disabled():
            disabled = model.cls_head(model.extract_feat(x)[0])
        assert torch.equal(adapted, host) and torch.equal(adapted, disabled)
        randomise(model.backbone.prompt)  # the adapters really run
        assert not torch.allclose(model.cls_head(model.extract_feat(x)[0]), host, atol=1e-4)


def adapter_names(positions, layers) -> set:
    return {f'backbone.prompt.adapters.{p}.{i}.{m}.{t}' for p in positions for i in range(layers)
            for m in ('fc1', 'conv', 'fc2') for t in ('weight', 'bias')}


def loss_of(model, labels=(1, 3)):
    feats = model.extract_feat(torch.randn(2, 1, 3, 4, 32, 32))[0]
    return F.cross_entropy(model.cls_head(feats), torch.tensor(labels))


def test_trainable_set_count_and_gradients():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='STAdapter', width=8, positions=BOTH))
    head = {'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == adapter_names(BOTH, 3) | head  # fc_norm stays frozen (official: ln_post frozen)
    assert model.backbone.num_trainable() == 6 * per_adapter(48, 8)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 6 * per_adapter(48, 8) + 48 * 5 + 5

    loss_of(model).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == trainable
    # At init the conv is zero: nothing reaches fc1 and fc2's input is zero; the conv and fc2's bias learn first.
    for n, g in grads.items():
        starts_at_zero = '.fc1.' in n or n.endswith('.fc2.weight')
        assert bool((g == 0).all()) == starts_at_zero, n

    randomise(model.backbone.prompt)
    model.zero_grad()
    loss_of(model).backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0} == trainable


def test_frozen_backbone_bit_identical_after_training():
    torch.manual_seed(0)
    model = tiny_recognizer(prompt=dict(type='STAdapter', width=8, positions=BOTH))
    before = train_steps_keep_frozen(model)
    after = dict(model.backbone.prompt.named_parameters())
    assert all(not torch.equal(after[n], before[n]) for n in before)  # after step 1 every adapter tensor moves


def test_layers_select_blocks():
    model = PromptedBackbone(dict(TINY_VIT), prompt=dict(type='STAdapter', width=4, layers=2))
    blocks = model.backbone.blocks
    assert model.prompt.targeted == [1, 2] and len(model.prompt.adapters['mlp']) == 2
    assert 'forward' not in vars(blocks[0]) and all('forward' in vars(b) for b in blocks[1:])


def test_wrong_grid_fails_naming_the_grid():
    torch.manual_seed(0)
    model = PromptedBackbone(dict(TINY_VIT), prompt=dict(type='STAdapter', width=4)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 32, 32))
        # mmaction2 interpolates its position embedding to 48x48 frames (6x6 patches); the adapters cannot.
        expected = r'gets 72 patch tokens .* t x h x w = 2 x 4 x 4 = 32.*4 frames of 32x32'
        with pytest.raises(ValueError, match=expected):
            model(torch.randn(1, 3, 4, 48, 48))


def test_image_hosts_and_grids_without_time_are_refused():
    with pytest.raises(ValueError, match=r"needs video.*layout 'tokens' and grid=\(14, 14\).*FrameTower"):
        STAdapter().setup(vit_b_sites(grid=(14, 14), prefix=1))
    with pytest.raises(ValueError, match=r'needs video.*grid=None'):
        STAdapter().setup(vit_b_sites(grid=None))
    from timm.models.vision_transformer import VisionTransformer
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, num_classes=5)
    with pytest.raises(ValueError, match='needs video.*FrameTower'):
        attach_prompts(vit, dict(type='STAdapter', width=4))


@pytest.mark.parametrize('kwargs,match', [
    (dict(width=0), 'width must be a positive int'), (dict(positions=('ffn',)), 'positions must list'),
    (dict(positions=()), 'positions must list'), (dict(positions=('mlp', 'mlp')), 'positions must list'),
    (dict(kernel_size=(2, 1, 1)), 'odd positive'), (dict(kernel_size=3), 'odd positive'),
    (dict(activation='relu'), 'activation must be one of')])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STAdapter(**kwargs)


@pytest.mark.parametrize('positions,layers', [(BOTH, 'all'), (('mlp',), 1)])
def test_extra_flops_closed_form(positions, layers):
    """Per adapter on N patch tokens: fc1 2·N·C·Ca + depth-wise conv 2·N·Ca·k + fc2 2·N·Ca·C (mult-add = 2; bias
    adds, padding and the residual add are elementwise, not counted). The host's own FLOPs are unchanged."""
    torch.manual_seed(0)
    C, Ca, N, depth = 48, 8, 32, 3
    adapted = PromptedBackbone(dict(TINY_VIT), prompt=dict(type='STAdapter', width=Ca, positions=positions,
                                                           layers=layers)).eval()
    bare = PromptedBackbone(dict(TINY_VIT)).eval()
    n = len(positions) * (depth if layers == 'all' else layers)
    for B in (1, 2):
        clip = torch.randn(B, 3, 4, 32, 32)
        assert count_flops(adapted, clip) - count_flops(bare, clip) == B * n * (4 * N * C * Ca + 2 * N * Ca * 3)
