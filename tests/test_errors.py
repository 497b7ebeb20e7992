"""Bad input gets one clear error that names the problem and the fix."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

from conftest import ROOT
from promptkit import PromptedBackbone, PromptStrategy
from promptkit.checkpoint import CheckpointError
from promptkit.engine.runner_setup import check_data
from promptkit.hosts import MMActionViTHost


def test_unknown_prompt_type_lists_registered_names(tiny_vit):
    with pytest.raises(KeyError) as e:
        PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPromt', num_tokens=2))
    assert 'AttentionPromt' in str(e.value) and 'AttentionPrompt' in str(e.value) and 'DeepPrompt' in str(e.value)


def test_bad_num_tokens_and_layer_range(tiny_vit):
    with pytest.raises(ValueError, match='num_tokens must be a positive int'):
        PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=0))
    with pytest.raises(ValueError, match='outside the model: it has 3 blocks'):
        PromptedBackbone(tiny_vit, prompt=dict(type='AttentionPrompt', num_tokens=2, end=3))
    with pytest.raises(ValueError, match='outside the model'):
        PromptedBackbone(tiny_vit, prompt=dict(type='DeepPrompt', num_tokens=2, layers=[7]))


def test_host_refuses_hooks_it_cannot_honour(tiny_vit, monkeypatch):
    class NeedsPreMLP(PromptStrategy):
        hooks = ('pre_mlp',)

        def build(self, sites):
            pass

    from promptkit.registry import PROMPTS
    PROMPTS.register_module(module=NeedsPreMLP, force=True)
    monkeypatch.setattr(MMActionViTHost, 'supported_hooks', ('extra_kv',))
    with pytest.raises(TypeError, match="needs the hooks \\['pre_mlp'\\]"):
        PromptedBackbone(tiny_vit, prompt=dict(type='NeedsPreMLP'))


def test_unsupported_backbone():
    with pytest.raises(TypeError, match='cannot attach prompts'):
        PromptedBackbone(torch.nn.Linear(2, 2))


def test_missing_pretrained_names_the_file(tiny_vit, tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(CheckpointError, match='nope.pth'):
        PromptedBackbone(tiny_vit, pretrained=str(missing))


def test_missing_data_root_is_one_clear_error():
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/apt/videomae_ssv2.py'))
    with pytest.raises(FileNotFoundError) as e:
        check_data(cfg, ('train', 'val'))
    msg = str(e.value)
    assert 'train_dataloader.dataset.ann_file: data/sthv2/sthv2_train_list_videos.txt' in msg
    assert 'data_root' in msg and '--cfg-options' in msg


def test_train_tool_fails_early_on_missing_data(tmp_path):
    r = subprocess.run([sys.executable, 'tools/train.py', 'configs/apt/videomae_ucf101.py', '--work-dir',
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    assert 'FileNotFoundError: data not found' in r.stderr and 'ucf101_train_split_1_videos.txt' in r.stderr


def test_custom_prompt_type_through_custom_imports(tmp_path, monkeypatch):
    """A prompt type defined outside the package, registered with @PROMPTS.register_module(), loaded by a
    config's custom_imports, builds inside a recognizer."""
    (tmp_path / 'my_prompts.py').write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from promptkit.registry import PROMPTS
        from promptkit.strategies import PromptStrategy

        @PROMPTS.register_module()
        class ConstantKV(PromptStrategy):
            hooks = ('extra_kv',)

            def build(self, sites):
                self.kv = nn.Parameter(torch.zeros(len(sites), 2, sites[0].head_dim))

            def extra_kv(self, site, q):
                return self.kv[self.index(site)], self.kv[self.index(site)]
    '''))
    (tmp_path / 'cfg.py').write_text(textwrap.dedent('''
        custom_imports = dict(imports=['my_prompts'], allow_failed_imports=False)
        default_scope = 'mmaction'
        model = dict(
            type='Recognizer3D',
            backbone=dict(type='promptkit.PromptedBackbone',
                          backbone=dict(type='VisionTransformer', img_size=32, patch_size=8, embed_dims=48,
                                        depth=2, num_heads=4, num_frames=4),
                          prompt=dict(type='ConstantKV', layers=[1])),
            cls_head=dict(type='TimeSformerHead', num_classes=3, in_channels=48))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'cfg.py'))
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    model = MODELS.build(cfg.model)
    assert type(model.backbone.prompt).__name__ == 'ConstantKV'
    assert model.backbone.prompt.kv.shape == (1, 2, 12)
    assert model.extract_feat(torch.randn(1, 1, 3, 4, 32, 32))[0].shape == (1, 48)
