"""Recipe details checked on the configs themselves: the VAPT / VPT optimiser decays every trained tensor except the
classifier's bias, which the official optimiser exempts alone (docs/methods.md §3); no config chooses a
checkpoint by validation accuracy when validation and test read the same list."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from conftest import ROOT


def decay_of_trained(cfg: Config) -> tuple[dict[str, float], float]:
    """Build the model (no weights) and its optimiser from ``cfg``; the weight decay each trained tensor gets."""
    cfg.model.pretrained = None
    init_default_scope(cfg.default_scope)
    from mmaction.registry import MODELS
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {id(p): group['weight_decay'] for group in optim.param_groups for p in group['params']}
    return {n: decay[id(p)] for n, p in model.named_parameters() if p.requires_grad}, optim.defaults['weight_decay']


@pytest.mark.parametrize('config,head', [('vapt_timm_digits_demo.py', 'backbone.head'),
                                         ('vapt_clip_digits_demo.py', 'head')])
def test_only_the_head_bias_is_exempt_from_weight_decay(config, head):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/vapt', config))
    if cfg.model.type.endswith('OpenCLIPClassifier'):
        cfg.model.update(head='linear', classnames=None)  # the zero-shot head has no bias
    decay, wd = decay_of_trained(cfg)
    assert wd > 0
    assert decay.pop(f'{head}.bias') == 0.0
    assert decay.pop(f'{head}.weight') == wd
    # Everything else the run trains is decayed, the prompt modules' biases (LayerNorm, token projector) included.
    assert any(n.startswith('prompt.') and n.endswith('.bias') for n in decay)
    assert decay and all(v == wd for v in decay.values()), {n: v for n, v in decay.items() if v != wd}


def test_real_configs_share_the_demo_rule():
    demo = Config.fromfile(osp.join(ROOT, 'configs/vapt/vapt_timm_digits_demo.py')).optim_wrapper.paramwise_cfg
    for name in ('vapt_vit-b16_vtab-cifar100.py', 'vpt-deep_vit-b16_fgvc-cub.py', 'vapt_clip-vit-b16_vtab-cifar100.py',
                 'linear-probe_vit-b16_vtab-cifar100.py'):
        assert Config.fromfile(osp.join(ROOT, 'configs/vapt', name)).optim_wrapper.paramwise_cfg == demo, name


VIDEO = sorted(c for d in ('apt', 'st_adapter', 'approx_prompt')
               for c in glob.glob(osp.join(ROOT, 'configs', d, '*.py')) if not osp.basename(c).startswith('clip-'))


@pytest.mark.parametrize('path', VIDEO, ids=[osp.relpath(c, ROOT) for c in VIDEO])
def test_no_best_checkpoint_chosen_on_the_test_list(path):
    cfg = Config.fromfile(path)
    if not cfg.get('val_dataloader') or not cfg.get('test_dataloader'):
        pytest.skip('no validation or no test list (text-to-image configs validate by sampling)')
    val, test = cfg.val_dataloader.dataset, cfg.test_dataloader.dataset
    same = (val.get('ann_file'), val.get('data_root'), val.get('task')) == \
        (test.get('ann_file'), test.get('data_root'), test.get('task'))
    if not same:
        pytest.skip('validation and test read different lists: choosing a checkpoint on validation is fine')
    assert cfg.default_hooks.checkpoint.get('save_best') is None
