"""``tools/analysis/benchmark_gpu.py`` end to end on a tiny CPU model: checks run and pass, every number lands."""
import importlib.util
import json
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_gpu', osp.join(ROOT, 'tools/analysis/benchmark_gpu.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tiny_cpu(tmp_path):
    tool = load_tool()
    rc = tool.main(['--tiny', '--device', 'cpu', '--repeats', '1', '--warmup', '0', '--work-dir', str(tmp_path),
                    '--variants', 'mmaction2', 'bare', 'full-ft', 'linear-probe', 'apt', 'apt-split', 'vpt-deep',
                    'approx', 'st-adapter'])
    assert rc == 0
    record = json.loads((tmp_path / 'benchmark.json').read_text())
    assert {c['check']: c['status'] for c in record['checks']} == {
        'kernel concat': 'pass', 'kernel split': 'pass', 'APT model split vs concat': 'pass'}
    rows = {r['variant']: r for r in record['rows']}
    assert set(rows) == {'mmaction2', 'bare', 'full-ft', 'linear-probe', 'apt', 'apt-split', 'vpt-deep', 'approx',
                         'st-adapter'}
    # Exact FLOPs: APT adds 2 * (2 * N * T * C) per layer over the bare host (tiny: N = 32, T = 8, C = 64, L = 2).
    assert rows['apt']['infer_flops'] - rows['bare']['infer_flops'] == 2 * 2 * 32 * 8 * 64 * 2
    assert rows['apt-split']['infer_flops'] == rows['apt']['infer_flops']
    assert rows['mmaction2']['infer_flops'] == rows['bare']['infer_flops']  # same maths, attention counted
    # Frozen training costs less than full fine-tuning in FLOPs (no weight gradients) and keeps fewer activations.
    assert rows['apt']['train_flops_vs_full_ft'] < 1 and rows['linear-probe']['train_flops_vs_full_ft'] < 0.5
    assert rows['apt-split']['saved_activation_mib'] < rows['apt']['saved_activation_mib']
    # Per layer, ApproxPrompt adds 4·N·M·C + 4·M·k·C (k = 4); ST-Adapter (width Ca = 32, before each MLP) adds
    # 4·N·C·Ca for fc1 and fc2 plus 2·N·Ca·3 for the (3, 1, 1) depth-wise convolution.
    assert rows['approx']['infer_flops'] - rows['bare']['infer_flops'] == 2 * (4 * 32 * 8 * 64 + 4 * 8 * 4 * 64)
    assert rows['st-adapter']['infer_flops'] - rows['bare']['infer_flops'] == 2 * (4 * 32 * 64 * 32 + 2 * 32 * 32 * 3)
    for name in ('apt', 'apt-split', 'vpt-deep', 'approx', 'st-adapter'):
        assert rows[name]['infer_ms'] > 0 and rows[name]['train_ms'] > 0 and 'infer_vs_bare' in rows[name]
    md = (tmp_path / 'benchmark.md').read_text()
    assert '| apt-split |' in md and (tmp_path / 'benchmark.csv').exists()
    assert [g['target'].split()[0] for g in record['targets']] == ['APT', 'APT', 'prompted']
