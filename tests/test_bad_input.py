"""Bad input, through the tools and the loaders: each case gets one clear error naming the problem (file, line,
key) and the fix, and the work dir's earlier files stay byte for byte as they were."""
import hashlib
import math
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT, TINY_VIT, tiny_recognizer
from promptkit import PromptedBackbone, PromptStrategy
from promptkit.artifacts import load_prompts, save_prompts
from promptkit.checkpoint import CheckpointError, read_state_dict

pytestmark = pytest.mark.slow
TINY_DATA = dict(num_train_per_class=2, num_test_per_class=1)


def tool(name: str, *args: str) -> int:
    """Run promptkit-train / promptkit-test in-process; returns the exit status."""
    from promptkit.cli import test as test_cli, train as train_cli
    try:
        (train_cli if name == 'train' else test_cli).main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """Tiny generated data, the demo's APT config on it, and one trained epoch (checkpoint and prompt file)."""
    from promptkit.datasets import ensure_motion_dataset
    tmp = tmp_path_factory.mktemp('bad_input')
    data = tmp / 'data'
    ensure_motion_dataset(str(data), task='diagonal', **TINY_DATA)
    # A frozen base of the demo's shape, random but saved, so that training and testing build the same one.
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    demo = Config.fromfile(f'{ROOT}/configs/apt/videomae_demo.py')
    torch.manual_seed(0)
    base = tmp / 'base.pth'
    torch.save({'state_dict': MODELS.build(dict(demo.model.backbone.backbone)).state_dict()}, base)
    cfg = tmp / 'tiny_apt.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{ROOT}/configs/apt/videomae_demo.py']
        gen = {TINY_DATA!r}
        model = dict(backbone=dict(pretrained='{base}'))
        train_dataloader = dict(batch_size=4, dataset=dict(data_root='{data}', generate_kwargs=gen))
        val_dataloader = dict(dataset=dict(data_root='{data}', generate_kwargs=gen))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs=1, val_interval=10)
        default_hooks = dict(checkpoint=dict(interval=1))
    '''))
    run = tmp / 'run'
    assert tool('train', str(cfg), '--work-dir', str(run)) == 0
    return dict(tmp=tmp, data=data, cfg=cfg, ckpt=run / 'epoch_1.pth', prompts=run / 'prompts.safetensors')


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture
def work(env, tmp_path):
    """A work dir holding an earlier run's files; after each test every one of them must be unchanged."""
    w = tmp_path / 'work'
    w.mkdir()
    shutil.copy(env['ckpt'], w / 'epoch_1.pth')
    shutil.copy(env['prompts'], w / 'prompts.safetensors')
    (w / 'notes.md').write_text('my notes')
    before = snapshot(w)
    yield w
    after = snapshot(w)
    assert {k: after.get(k) for k in before} == before, 'an earlier file of the work dir changed'


def user_list(env, tmp_path, edit, name='test.txt') -> Path:
    """A user's own copy of the generated list with ``edit(lines)`` applied; the clips stay where they are."""
    lines = (env['data'] / name).read_text().splitlines()
    edit(lines)
    path = tmp_path / f'my_{name}'
    path.write_text(''.join(f'{ln}\n' for ln in lines))
    return path


def video_cfg(env, tmp_path, ann: Path, split: str = 'test', prefix: Path | None = None) -> Path:
    """The tiny config with ``<split>_dataloader`` reading ``ann`` through mmaction2's VideoDataset."""
    prefix = prefix or env['data'] / 'videos'
    pipeline = 'train_pipeline' if split == 'train' else 'test_pipeline'
    cfg = tmp_path / f'cfg_{split}.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = ['{env["cfg"]}']
        {split}_dataloader = dict(dataset=dict(_delete_=True, type='VideoDataset', ann_file='{ann}',
                                  data_prefix=dict(video='{prefix}'), pipeline={{{{_base_.{pipeline}}}}},
                                  test_mode={split != 'train'}))
    '''))
    return cfg


def assert_one_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith('promptkit-')]
    assert lines and 'error:' in lines[0], err[-2000:]
    assert 'Traceback' not in err, err[-2000:]
    for needle in needles:
        assert needle in err, (needle, err[-2000:])


# --- annotation lists: all problems at once, with file and line ----------------------------------------------

def test_label_out_of_range_in_test_list(env, work, tmp_path, capsys):
    ann = user_list(env, tmp_path, lambda ls: ls.__setitem__(1, ls[1].rsplit(' ', 1)[0] + ' 9'))
    assert tool('test', str(video_cfg(env, tmp_path, ann)), str(work / 'epoch_1.pth'), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, f'{ann}:2: label 9 is outside 0..3 (the model has num_classes=4)',
                     'Fix:')


def test_label_out_of_range_in_train_list(env, work, tmp_path, capsys):
    ann = user_list(env, tmp_path, lambda ls: ls.__setitem__(3, ls[3].rsplit(' ', 1)[0] + ' -1'), 'train.txt')
    assert tool('train', str(video_cfg(env, tmp_path, ann, 'train')), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, f'{ann}:4: label -1 is outside 0..3', 'num_classes')


def test_empty_list(env, work, tmp_path, capsys):
    ann = tmp_path / 'empty.txt'
    ann.write_text('')
    assert tool('test', str(video_cfg(env, tmp_path, ann)), str(work / 'epoch_1.pth'), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, f'{ann}: annotation list is empty')


def test_every_problem_reported_at_once(env, work, tmp_path, capsys):
    def edit(ls):
        ls[0] = 'test/nope.mp4 1'
        ls[2] = 'this line has too many fields'
        ls.append('test/down-left_0.mp4 seven')
    ann = user_list(env, tmp_path, edit)
    assert tool('test', str(video_cfg(env, tmp_path, ann)), str(work / 'epoch_1.pth'), '--work-dir', str(work)) == 1
    err = capsys.readouterr().err
    assert_one_error(err, '3 problems', f'{ann}:1: test/nope.mp4 not found', f'{ann}:3: expected',
                     f"{ann}:5: expected \"relative/path.mp4 label\", got 'test/down-left_0.mp4 seven'")


def test_missing_list_file(env, work, tmp_path, capsys):
    ann = tmp_path / 'no_such_list.txt'
    assert tool('test', str(video_cfg(env, tmp_path, ann)), str(work / 'epoch_1.pth'), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, 'data not found', str(ann), '--cfg-options')


# --- samples that cannot be decoded --------------------------------------------------------------------------

@pytest.fixture
def bad_clip(env, tmp_path):
    """The test list plus a text file named .mp4 (in a user folder beside copies of the clips)."""
    videos = tmp_path / 'videos'
    shutil.copytree(env['data'] / 'videos', videos)
    (videos / 'test' / 'broken.mp4').write_text('not a video')
    ann = user_list(env, tmp_path, lambda ls: ls.append('test/broken.mp4 2'))
    return video_cfg(env, tmp_path, ann, prefix=videos), videos / 'test' / 'broken.mp4'


def test_undecodable_video_is_named(bad_clip, work, capsys):
    cfg, clip = bad_clip
    assert tool('test', str(cfg), str(work / 'epoch_1.pth'), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, 'BadSampleError', f'cannot decode {clip}', 'decoder decord',
                     '--skip-bad-samples')


def test_skip_bad_samples_logs_and_skips(bad_clip, work, capsys):
    cfg, clip = bad_clip
    assert tool('test', str(cfg), str(work / 'epoch_1.pth'), '--work-dir', str(work), '--skip-bad-samples') == 0
    out = capsys.readouterr()
    assert f'--skip-bad-samples: skipping [test] {clip} (decoder decord)' in out.out + out.err
    assert (work / 'test_metrics.json').exists()


def test_skip_bad_samples_in_training_draws_another(bad_clip, env):
    """The training guard returns None for a bad sample, and MMEngine's dataset re-fetches a good one."""
    from mmaction.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from promptkit.engine.validate import BadSampleError, guard_dataset
    cfg = Config.fromfile(str(bad_clip[0]))
    init_default_scope('mmaction')
    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=cfg.train_pipeline, test_mode=False))
    bad = len(ds) - 1
    guard_dataset(ds, skip=False)
    with pytest.raises(BadSampleError, match='broken.mp4'):
        ds[bad]
    ds.pipeline.skip = True
    assert tuple(ds[bad]['inputs'].shape) == (1, 3, 8, 32, 32)


# --- a demo data root pointed at a user's folder -------------------------------------------------------------

def test_generated_data_refuses_a_user_folder(env, work, tmp_path, capsys):
    mine = tmp_path / 'my_data'
    (mine / 'videos').mkdir(parents=True)
    (mine / 'videos' / 'holiday.mp4').write_bytes(b'precious')
    (mine / 'train.txt').write_text('holiday.mp4 0\n')
    before = snapshot(mine)
    assert tool('train', str(env['cfg']), '--work-dir', str(work), '--cfg-options',
                f'train_dataloader.dataset.data_root={mine}') == 1
    assert_one_error(capsys.readouterr().err, 'ForeignDataRootError', f'data root {mine}', 'new or empty folder')
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ['train.txt', 'videos']


# --- artifacts: checked on load ------------------------------------------------------------------------------

def rewrite_prompts(src: Path, dst: Path, edit) -> Path:
    from promptkit.checkpoint import read_safetensors
    tensors, meta = read_safetensors(str(src))
    edit(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_nan_prompt_file(env, work, tmp_path, capsys):
    key = []

    def poison(tensors):
        key.append(next(k for k in sorted(tensors) if 'prompt_k' in k))
        tensors[key[0]].fill_(math.nan)
    bad = rewrite_prompts(env['prompts'], tmp_path / 'prompts.safetensors', poison)
    assert tool('test', str(env['cfg']), str(bad), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, str(bad), 'non-finite values (NaN or Inf)', key[0],
                     'earlier checkpoint')


def test_truncated_prompt_file(env, work, tmp_path, capsys):
    bad = tmp_path / 'prompts.safetensors'
    bad.write_bytes(env['prompts'].read_bytes()[:-100])
    assert tool('test', str(env['cfg']), str(bad), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, str(bad), 'truncated or corrupted', 'copy it again')


def test_corrupted_prompt_header(env, work, tmp_path, capsys):
    raw = bytearray(env['prompts'].read_bytes())
    raw[8:40] = b'#' * 32  # inside the JSON header
    bad = tmp_path / 'prompts.safetensors'
    bad.write_bytes(bytes(raw))
    assert tool('test', str(env['cfg']), str(bad), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, str(bad), 'truncated or corrupted')


def test_safetensors_without_promptkit_header(env, tmp_path):
    model = tiny_recognizer(dict(type='AttentionPrompt', num_tokens=2))
    bad = tmp_path / 'plain.safetensors'
    save_file({'x': torch.zeros(1)}, str(bad))
    with pytest.raises(CheckpointError, match="without promptkit's header"):
        load_prompts(model, str(bad))


def test_truncated_checkpoint(env, work, tmp_path, capsys):
    bad = tmp_path / 'epoch_1.pth'
    bad.write_bytes(env['ckpt'].read_bytes()[:2000])
    assert tool('test', str(env['cfg']), str(bad), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, f"cannot read checkpoint '{bad}'", 'truncated or corrupted')


def test_nan_checkpoint(env, work, tmp_path, capsys):
    ckpt = torch.load(env['ckpt'], map_location='cpu', weights_only=True)
    ckpt['state_dict']['cls_head.fc_cls.weight'][0, 0] = math.inf
    bad = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, bad)
    assert tool('test', str(env['cfg']), str(bad), '--work-dir', str(work)) == 1
    assert_one_error(capsys.readouterr().err, str(bad), 'non-finite', 'cls_head.fc_cls.weight')


def test_truncated_base_checkpoint(env, work, tmp_path, capsys):
    base = tmp_path / 'base.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, base)
    base.write_bytes(base.read_bytes()[:500])
    assert tool('test', str(env['cfg']), str(work / 'epoch_1.pth'), '--work-dir', str(work), '--cfg-options',
                f'model.backbone.pretrained={base}') == 1
    assert_one_error(capsys.readouterr().err, f"cannot read checkpoint '{base}'", 'truncated or corrupted')


def test_missing_base_checkpoint(env, work, tmp_path, capsys):
    base = tmp_path / 'nope.pth'
    assert tool('test', str(env['cfg']), str(work / 'epoch_1.pth'), '--work-dir', str(work), '--cfg-options',
                f'model.backbone.pretrained={base}') == 1
    assert_one_error(capsys.readouterr().err, str(base), 'does not exist', 'pretrained=')


def test_wrong_width_checkpoint(env, work, capsys):
    """A checkpoint of 8 prompt tokens loaded into a model of 4: refused before MMEngine copies (it would warn)."""
    assert tool('test', str(env['cfg']), str(work / 'epoch_1.pth'), '--work-dir', str(work), '--cfg-options',
                'model.backbone.prompt.num_tokens=4') == 1
    err = capsys.readouterr().err
    assert_one_error(err, 'of another shape', 'the model this config builds', 'num_tokens')
    assert 'backbone.prompt.prompt_k' in err and '8, 16), the model this config builds (4, 16)' in err


def test_wrong_width_prompt_file(env, work, capsys):
    assert tool('test', str(env['cfg']), str(work / 'prompts.safetensors'), '--work-dir', str(work),
                '--cfg-options', 'model.backbone.prompt.num_tokens=4') == 1
    assert_one_error(capsys.readouterr().err, 'of another shape', 'prompt_k')


def test_prompt_file_for_another_strategy(tmp_path):
    deep = tiny_recognizer(dict(type='DeepPrompt', num_tokens=2))
    apt = tiny_recognizer(dict(type='AttentionPrompt', num_tokens=2))
    path = save_prompts(deep, str(tmp_path))
    before = Path(path).read_bytes()
    with pytest.raises(RuntimeError, match=r"holds prompts for .*'DeepPrompt'.*this model has .*'AttentionPrompt'"
                                           r".*prompt_config.json"):
        load_prompts(apt, path)
    assert Path(path).read_bytes() == before


def test_prompt_file_missing_a_tensor_and_wrong_dtype(tmp_path):
    model = tiny_recognizer(dict(type='AttentionPrompt', num_tokens=2))
    good = save_prompts(model, str(tmp_path))
    missing = rewrite_prompts(Path(good), tmp_path / 'missing.safetensors', lambda t: t.pop('cls_head.fc_cls.bias'))
    with pytest.raises(CheckpointError, match=r"1 missing: \['cls_head.fc_cls.bias'\].*retrain"):
        load_prompts(model, str(missing))
    ints = rewrite_prompts(Path(good), tmp_path / 'ints.safetensors',
                           lambda t: t.__setitem__('cls_head.fc_cls.bias', torch.zeros(5, dtype=torch.int64)))
    with pytest.raises(CheckpointError, match='of another dtype: cls_head.fc_cls.bias: file torch.int64'):
        load_prompts(model, str(ints))


# --- configs: a few lines at the top, with a did-you-mean; the traceback in the log or with --debug ----------

def test_unknown_prompt_type(env, work, capsys):
    assert tool('train', str(env['cfg']), '--work-dir', str(work), '--cfg-options',
                'model.backbone.prompt.type=AttentionPromt') == 1
    out = capsys.readouterr()
    assert_one_error(out.err, "unknown prompt type 'AttentionPromt'", "did you mean 'AttentionPrompt'",
                     'full traceback in')
    assert len(out.err.strip().splitlines()) <= 3 and 'Config:' not in out.out
    log = next(work.glob('*/*.log')).read_text()
    assert 'Traceback' in log and 'Config:' in log  # both kept in the log file


def test_unknown_registry_type(env, work, capsys):
    assert tool('train', str(env['cfg']), '--work-dir', str(work), '--cfg-options',
                'model.cls_head.type=TimeSformerHed') == 1
    assert_one_error(capsys.readouterr().err, 'TimeSformerHed is not in the', "did you mean 'TimeSformerHead'")


def test_prompt_without_type(env, work, capsys):
    assert tool('train', str(env['cfg']), '--work-dir', str(work), '--cfg-options',
                'model.backbone.prompt.type=None') == 1
    assert_one_error(capsys.readouterr().err, "has no 'type'", 'registered prompt types')


def test_debug_prints_the_traceback(env, work, capsys):
    with pytest.raises(KeyError, match='AttentionPromt'):
        tool('train', str(env['cfg']), '--work-dir', str(work), '--debug', '--cfg-options',
             'model.backbone.prompt.type=AttentionPromt')


def test_layer_range_beyond_the_depth():
    with pytest.raises(ValueError, match='outside the model') as e:
        PromptedBackbone(dict(TINY_VIT), prompt=dict(type='DeepPrompt', num_tokens=2, layers=[7]))
    assert '3' in str(e.value)  # the depth it has


def test_hook_the_host_cannot_honour(monkeypatch):
    class NeedsAttnOutput(PromptStrategy):
        hooks = ('attn_output',)

        def build(self, sites):
            pass

    from promptkit.hosts import MMActionViTHost
    from promptkit.registry import PROMPTS
    PROMPTS.register_module(module=NeedsAttnOutput, force=True)
    monkeypatch.setattr(MMActionViTHost, 'supported_hooks', ('extra_kv',))
    with pytest.raises(TypeError, match=r"NeedsAttnOutput needs the hooks \['attn_output'\].*choose another"):
        PromptedBackbone(dict(TINY_VIT), prompt=dict(type='NeedsAttnOutput'))


def test_base_checkpoint_with_nan(tmp_path):
    path = tmp_path / 'base.pth'
    torch.save({'state_dict': {'w': torch.tensor([1.0, math.nan])}}, path)
    with pytest.raises(CheckpointError, match=r"non-finite values .* \['w'\]"):
        read_state_dict(str(path))
