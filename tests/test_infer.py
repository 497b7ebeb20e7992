"""promptkit.apis.infer / promptkit-infer: the config's test pipeline, weights loaded with the base check, top-k."""
import glob
import os.path as osp
import types

import pytest
import torch

from promptkit.apis import build_model, infer
from promptkit.apis.inference import main

CONFIG = 'promptkit::apt/videomae_demo.py'
CLASSES = ['down-right', 'down-left', 'up-right', 'up-left']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A frozen base on disk, a model with non-trivial prompts and head, saved both ways, and one demo video."""
    from mmaction.apis import inference_recognizer
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    from promptkit.artifacts import save_prompts
    from promptkit.datasets.demo import ensure_motion_dataset
    from promptkit.engine.hooks import PromptCheckpointHook
    tmp = tmp_path_factory.mktemp('infer')
    root = ensure_motion_dataset(str(tmp / 'data'), task='diagonal', num_train_per_class=1, num_test_per_class=1)
    video = sorted(glob.glob(osp.join(root, 'videos', '**', '*.mp4'), recursive=True))[0]
    bases = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        base = build_model(CONFIG, {'model.backbone.pretrained': None})
        bases.append(str(tmp / f'base{seed}.pth'))
        torch.save(base.backbone.backbone.state_dict(), bases[-1])
    opts = {'model.backbone.pretrained': bases[0]}
    model = build_model(CONFIG, opts)
    torch.manual_seed(2)
    with torch.no_grad():  # trained-looking tensors, so that loading them visibly matters
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.5)
    save_prompts(model, str(tmp / 'export'))
    checkpoint = dict(state_dict=model.state_dict(), meta={})
    PromptCheckpointHook().before_save_checkpoint(types.SimpleNamespace(model=model), checkpoint)
    torch.save(checkpoint, str(tmp / 'epoch_1.pth'))
    with DefaultScope.overwrite_default_scope('mmaction'):
        pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    expected = inference_recognizer(model, video, pipeline).pred_score
    labels = tmp / 'labels.txt'
    labels.write_text('\n'.join(CLASSES) + '\n')
    return dict(video=video, bases=bases, opts=opts, expected=expected, labels=str(labels),
                prompts=str(tmp / 'export' / 'prompts.safetensors'), checkpoint=str(tmp / 'epoch_1.pth'))


def test_infer_prompt_file_and_checkpoint(trained):
    results = {}
    for kind in ('prompts', 'checkpoint'):
        (result,) = infer(CONFIG, trained[kind], [trained['video']], topk=3, labels=trained['labels'],
                          cfg_options=trained['opts'])
        results[kind] = result
        assert torch.allclose(result['scores'], trained['expected'], atol=1e-6)
        scores = [s for _, _, s in result['topk']]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert [n for _, n, _ in result['topk']] == [CLASSES[i] for i, _, _ in result['topk']]
    assert torch.equal(results['prompts']['scores'], results['checkpoint']['scores'])
    # Without the weights, the same model gives other scores: the loaded tensors are the ones used.
    (untrained,) = infer(CONFIG, None, [trained['video']], cfg_options=trained['opts'])
    assert not torch.allclose(untrained['scores'], trained['expected'])


def test_infer_refuses_another_base(trained):
    other = {'model.backbone.pretrained': trained['bases'][1]}
    for kind in ('prompts', 'checkpoint'):
        with pytest.raises(RuntimeError, match='another frozen base'):
            infer(CONFIG, trained[kind], [trained['video']], cfg_options=other)
    with pytest.raises(FileNotFoundError, match='do not exist'):
        infer(CONFIG, trained['prompts'] + '.missing', [trained['video']], cfg_options=trained['opts'])


def test_cli_prints_top_k(trained, capsys):
    main([CONFIG, trained['prompts'], trained['video'], '--topk', '2', '--labels', trained['labels'],
          '--cfg-options', f'model.backbone.pretrained={trained["bases"][0]}'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == trained['video'] and len(lines) == 3
    best = int(trained['expected'].argmax())
    assert lines[1].split() == [f'{float(trained["expected"][best]):.4f}', CLASSES[best]]
