"""The PEFT-style API: models built by their own factories, a plain training loop, save -> reload -> same outputs,
unload() -> the original bit-identical."""
import copy

import pytest
import torch
import torch.nn.functional as F

import promptkit
from promptkit.prompt_model import PromptModel, get_prompt_model, locate_host

TINY_TIMM = dict(model_name='vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, embed_dim=48,
                 depth=2, num_heads=4, num_classes=5)
TINY_CLIP = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2, head_width=12),
                 text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=4, layers=1))
PROMPT = dict(type='AttentionPrompt', num_tokens=4, dropout=0.0)


def timm_vit(seed: int = 0) -> torch.nn.Module:
    import timm
    torch.manual_seed(seed)
    return timm.create_model(**TINY_TIMM)


def clip_model(seed: int = 0) -> torch.nn.Module:
    import open_clip
    open_clip.factory._MODEL_CONFIGS['tiny-api-test'] = copy.deepcopy(TINY_CLIP)
    torch.manual_seed(seed)
    return open_clip.create_model('tiny-api-test', pretrained=None)


def snapshot(model: torch.nn.Module) -> dict:
    """Everything unload() must give back: tensors, requires_grad, instance forwards, hooks."""
    return dict(state={k: v.clone() for k, v in model.state_dict().items()},
                grad={n: p.requires_grad for n, p in model.named_parameters()},
                forwards=[n for n, m in model.named_modules() if 'forward' in vars(m)],
                hooks=[(n, len(m._forward_pre_hooks), len(m._forward_hooks)) for n, m in model.named_modules()])


def assert_same(a: dict, b: dict) -> None:
    assert a['grad'] == b['grad'] and a['forwards'] == b['forwards'] and a['hooks'] == b['hooks']
    assert a['state'].keys() == b['state'].keys()
    changed = [k for k in a['state'] if not torch.equal(a['state'][k], b['state'][k])]
    assert not changed, changed


def train_loop(pm: PromptModel, forward, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> None:
    frozen = {n: p.detach().clone() for n, p in pm.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in pm.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm.train()
    for _ in range(steps):
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pm.eval()
    assert all(torch.equal(p, frozen[n]) for n, p in pm.named_parameters() if n in frozen)
    assert all(not torch.equal(p, trained[n]) for n, p in pm.named_parameters() if n in trained)


@pytest.mark.parametrize('family', ['timm', 'open_clip'])
def test_train_save_reload_unload(family, tmp_path):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 32, 32)
    if family == 'timm':
        build, y, head = timm_vit, torch.tensor([0, 1, 2, 3]), ('head.weight', 'head.bias')
    else:
        build, y, head = clip_model, torch.tensor([0, 1, 2, 3]) % 32, ('visual.proj',)
    model = build()
    model.eval()
    before = snapshot(model)

    def forward(m, inputs):
        return m(inputs) if family == 'timm' else m.encode_image(inputs)

    with torch.no_grad():
        reference = forward(model, x)
    pm = get_prompt_model(model, prompt=PROMPT, train=('head',))
    assert isinstance(pm, torch.nn.Module) and pm.base_model is model
    norm = pm.host.roles['head_norm']  # AttentionPrompt trains the host's head norm, as the official code does
    norm = f'{pm.host_path}.{norm}' if pm.host_path else norm
    expected = {f'prompt.{n}' for n, _ in pm.prompt.named_parameters()} | {f'base_model.{n}' for n in head} | \
        {f'base_model.{norm}.weight', f'base_model.{norm}.bias'}
    assert {n for n, p in pm.named_parameters() if p.requires_grad} == expected
    train_loop(pm, lambda inputs: forward(pm, inputs), x, y)
    with torch.no_grad():
        tuned = forward(pm, x)
        with pm.disable_prompts():  # prompts off, trained head still in place: not the tuned output
            off = forward(pm, x)
    assert not torch.allclose(tuned, off)
    pm.save_pretrained(str(tmp_path))
    with pytest.raises(FileExistsError):
        pm.save_pretrained(str(tmp_path))

    fresh = build()  # the same factory and seed: the same base weights
    fresh.eval()
    pm2 = PromptModel.from_pretrained(fresh, str(tmp_path))
    pm2.eval()
    with torch.no_grad():
        assert torch.equal(forward(pm2, x), tuned)

    with pytest.raises(RuntimeError, match='another frozen base'):
        PromptModel.from_pretrained(build(seed=5), str(tmp_path))

    original = pm.unload()
    assert original is model
    assert_same(snapshot(original), before)
    with torch.no_grad():
        assert torch.equal(forward(original, x), reference)


def test_unload_after_failed_load_leaves_model(tmp_path):
    pm = get_prompt_model(timm_vit(), prompt=PROMPT, train=('head',))
    pm.save_pretrained(str(tmp_path))
    other = timm_vit(seed=3)
    before = snapshot(other)
    with pytest.raises(RuntimeError):
        PromptModel.from_pretrained(other, str(tmp_path))
    assert_same(snapshot(other), before)


def test_locating_and_train_names():
    clip = clip_model()
    assert locate_host(clip) == 'visual' and locate_host(clip.visual) == ''
    container = torch.nn.Sequential(torch.nn.Identity(), timm_vit())  # no family entry: found by search
    assert locate_host(container) == '1'
    pm = get_prompt_model(container, prompt=None, train=('1.head',))
    assert {n for n, p in pm.named_parameters() if p.requires_grad} == {'base_model.1.head.weight',
                                                                          'base_model.1.head.bias'}
    with pytest.raises(KeyError, match='neither'):
        get_prompt_model(timm_vit(), prompt=None, train=('nothing',))
    with pytest.raises(ValueError, match='already has prompts'):
        get_prompt_model(torch.nn.Sequential(pm), prompt=PROMPT)
    with pytest.raises(TypeError, match='cannot attach prompts'):
        get_prompt_model(torch.nn.Linear(3, 3), prompt=PROMPT)
    assert promptkit.get_prompt_model is get_prompt_model


def test_mmaction_recognizer(clip):
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from conftest import TINY_VIT
    init_default_scope('mmaction')
    rec = MODELS.build(dict(type='Recognizer3D', backbone=dict(TINY_VIT),
                            cls_head=dict(type='TimeSformerHead', num_classes=3, in_channels=48)))
    pm = get_prompt_model(rec, prompt=PROMPT, train=('head',))
    assert pm.host_path == 'backbone'
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert 'base_model.cls_head.fc_cls.weight' in trainable and any(n.startswith('prompt.') for n in trainable)
    assert not any(n.startswith('base_model.backbone.blocks') for n in trainable)
    feats = pm.extract_feat(clip[:, None])[0]  # an attribute of the recognizer, through the wrapper
    assert feats.shape == (2, 48)
