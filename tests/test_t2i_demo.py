"""A very short run of tools/t2i_demo.py: stage 1 (a few steps), one method, one seed; table, PNGs, results."""
import importlib.util
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_t2i_demo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    demo = _demo()
    threads = torch.get_num_threads()
    try:
        record = demo.main(['--work-dir', str(tmp_path), '--pretrain-steps', '3', '--steps', '2', '--methods',
                            'approx', '--seeds', '0', '--per-digit', '2', '--drift-noise', '1', '--sample-steps',
                            '2', '--batch-size', '8', '--threads', str(threads), '--size', 'approx=2'])
    finally:
        torch.set_num_threads(threads)
    run_dir = record['run_dir']
    assert os.path.dirname(run_dir) == str(tmp_path)
    files = set(os.listdir(run_dir))
    assert {'table.md', 'results.json', 'log.txt', 'samples_stage1_base.png', 'samples_approx.png', 'base'} <= files
    table = open(os.path.join(run_dir, 'table.md')).read()
    assert '| ApproxPrompt, attn1+attn2, M=2 |' in table and 'stage 1 base' in table
    with open(os.path.join(run_dir, 'results.json')) as f:
        res = json.load(f)
    run = res['results']['approx'][0]
    assert run['trainable'] > 0 and 0 <= run['content_accuracy'] <= 1 and 0 <= run['domain_rate'] <= 1
    assert run['drift'] >= 0
    from PIL import Image
    grid = Image.open(os.path.join(run_dir, 'samples_approx.png'))
    assert grid.size[0] > 2 * 32 and grid.size[1] > 10 * 32  # 10 rows (digits) of 4x-upscaled 8x8 samples


def _demo():
    spec = importlib.util.spec_from_file_location('t2i_demo', os.path.join(ROOT, 'tools', 't2i_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_lr_and_size_options(capsys):
    """--lr / --size override one method each; the table names the size; a bad item is one argparse error."""
    import pytest

    demo = _demo()
    args = demo.parse_args(['--lr', 'approx=1e-2', '--size', 'kv=100', 'lora=8'])
    assert args.lr == dict(demo.LR, approx=1e-2) and args.size == dict(kv=100, lora=8)
    assert demo.method_cfg('kv', 100)['prompt']['num_tokens'] == 100
    assert demo.method_cfg('kv')['prompt']['num_tokens'] == demo.METHOD_CFG['kv']['prompt']['num_tokens']
    assert demo.method_name('lora', 8) == 'PEFT LoRA r=8 (q, k, v, out)'
    for bad in (['--size', 'full=3'], ['--lr', 'approx'], ['--lr', 'apx=1e-2'], ['--size', 'kv=1.5']):
        with pytest.raises(SystemExit):
            demo.parse_args(bad)
        assert bad[1] in capsys.readouterr().err


def test_stage_two_repeats_exactly(tmp_path, monkeypatch):
    """Same seed, same trained prompts, whatever ran before (the caption dropout draws from Python's random)."""
    import random

    from promptkit.t2i.tiny import save_tiny_text_to_image

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    demo = _demo()
    base = save_tiny_text_to_image(str(tmp_path / 'base'))
    trained = []
    for _ in range(2):
        demo.set_seed(0)
        adapted = demo.adapt('approx', base, size=2)
        demo.tune(adapted, 3, 8, 1e-2, 0)
        trained.append([p.detach().clone() for p in adapted.params])
        random.random(), torch.rand(3)  # what an evaluation in between would draw
    assert all(torch.equal(a, b) for a, b in zip(*trained))
