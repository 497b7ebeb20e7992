"""A very short run of tools/t2i_demo.py: stage 1 (a few steps), one method, one seed; table, PNGs, results."""
import importlib.util
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_t2i_demo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    spec = importlib.util.spec_from_file_location('t2i_demo', os.path.join(ROOT, 'tools', 't2i_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    threads = torch.get_num_threads()
    try:
        record = demo.main(['--work-dir', str(tmp_path), '--pretrain-steps', '3', '--steps', '2', '--methods',
                            'approx', '--seeds', '0', '--per-digit', '2', '--drift-noise', '1', '--sample-steps',
                            '2', '--batch-size', '8', '--threads', str(threads)])
    finally:
        torch.set_num_threads(threads)
    run_dir = record['run_dir']
    assert os.path.dirname(run_dir) == str(tmp_path)
    files = set(os.listdir(run_dir))
    assert {'table.md', 'results.json', 'log.txt', 'samples_stage1_base.png', 'samples_approx.png', 'base'} <= files
    table = open(os.path.join(run_dir, 'table.md')).read()
    assert '| ApproxPrompt' in table and 'stage 1 base' in table
    with open(os.path.join(run_dir, 'results.json')) as f:
        res = json.load(f)
    run = res['results']['approx'][0]
    assert run['trainable'] > 0 and 0 <= run['content_accuracy'] <= 1 and 0 <= run['domain_rate'] <= 1
    assert run['drift'] >= 0
    from PIL import Image
    grid = Image.open(os.path.join(run_dir, 'samples_approx.png'))
    assert grid.size[0] > 2 * 32 and grid.size[1] > 10 * 32  # 10 rows (digits) of 4x-upscaled 8x8 samples
