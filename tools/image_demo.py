"""The image demo, end to end on CPU in a few minutes: ``python tools/image_demo.py``.

Data: scikit-learn's handwritten digits (real 8x8 scans, upscaled to 32x32), written under ``data/digits``.

1. ``tools/train.py configs/vapt/timm_digits-pretrain_demo.py``: a tiny timm ViT trained from scratch on digits 0-4
   (the "pre-trained" base).
2. For each variant (linear probe, VPT-deep, VAPT): ``tools/train.py configs/vapt/<variant>_timm_digits_demo.py``
   tunes the frozen base on the new digits 5-9 (head, + prompts), then ``tools/test.py`` tests the checkpoint and
   the exported ``prompts.safetensors``.
3. The same for open_clip (unless ``--no-clip``): a tiny open_clip visual tower pre-trained on 0-4
   (``clip_digits-pretrain_demo.py``), then VAPT with a zero-shot-initialised head on 5-9.

Prints a table (trainable parameters, test top-1, wall time of each run); results go to ``work_dirs/``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = ('linear-probe', 'vpt-deep', 'vapt')
NAMES = {'linear-probe': 'linear probe', 'vpt-deep': 'VPT-deep', 'vapt': 'VAPT'}


def run(*args: str) -> float:
    """Run a tool with this interpreter from the repository root; returns the wall time in seconds."""
    cmd = [sys.executable, *args]
    print('+', ' '.join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.time() - start


def schedule(epochs: int) -> list[str]:
    """``--cfg-options`` that shorten a demo config to ``epochs`` (10 % warm-up, then cosine)."""
    warmup = max(2, round(epochs / 10))  # MMEngine's LinearLR reaches the full lr at its last epoch, end - 1
    return [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
            f'default_hooks.checkpoint.interval={epochs}', f'param_scheduler.0.end={warmup}',
            f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={epochs}',
            f'param_scheduler.1.T_max={epochs - warmup}']


def trainable(work_dir: str) -> int:
    """The trainable parameter count the model wrote beside its log."""
    tables = sorted(glob.glob(osp.join(ROOT, work_dir, '*', 'trainable_parameters.txt')), key=osp.getmtime)
    last = open(tables[-1]).read().strip().splitlines()[-1]  # trainable params: N || all params: M || ...
    return int(last.split('||')[0].split(':')[1].replace(',', ''))


def final_val(work_dir: str) -> float:
    """The last validation top-1 of a run (the demo configs validate on the test split once, at the end)."""
    logs = sorted(glob.glob(osp.join(ROOT, work_dir, '*', 'vis_data', 'scalars.json')), key=osp.getmtime)
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if 'acc/top1' in line][-1]['acc/top1']


def test(config: str, checkpoint: str, work_dir: str, options: list[str]) -> float:
    run('tools/test.py', config, checkpoint, '--work-dir', work_dir, *(['--cfg-options', *options] if options else []))
    with open(osp.join(ROOT, work_dir, 'test_metrics.json')) as f:
        return json.load(f)['acc/top1']


def family(host: str, variants: list[str], args: argparse.Namespace) -> dict:
    """Pre-train one backbone, then tune and test each variant on it."""
    epochs, pre_epochs = schedule(args.epochs), args.pretrain_epochs or args.epochs
    pre_cfg = f'configs/vapt/{host}_digits-pretrain_demo.py'
    pre_dir = osp.join(args.work_dir, f'{host}_digits-pretrain_demo')
    base = osp.join(pre_dir, f'epoch_{pre_epochs}.pth')
    results = {'pretrain': dict(seconds=run('tools/train.py', pre_cfg, '--work-dir', pre_dir, '--cfg-options',
                                             *schedule(pre_epochs)))}
    results['pretrain']['acc_top1'] = final_val(pre_dir)
    for variant in variants:
        config = f'configs/vapt/{variant}_{host}_digits_demo.py'
        work_dir = osp.join(args.work_dir, f'{variant}_{host}_digits_demo')
        options = [f'model.pretrained={base}']
        seconds = run('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options, *epochs)
        results[variant] = dict(seconds=seconds, trainable=trainable(work_dir),
                                acc_top1=test(config, osp.join(work_dir, f'epoch_{args.epochs}.pth'), work_dir,
                                              options),
                                acc_top1_prompt_file=test(config, osp.join(work_dir, 'prompts.safetensors'),
                                                          work_dir, options))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs', help='parent folder of the runs')
    parser.add_argument('--epochs', type=int, default=30, help='epochs of every run (the configs say 30)')
    parser.add_argument('--pretrain-epochs', type=int, help='epochs of the pre-training runs (default: --epochs)')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS),
                        help='timm variants to tune on the pre-trained base')
    parser.add_argument('--no-clip', action='store_true', help='skip the open_clip runs')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()

    start = time.time()
    results = {'timm': family('timm', args.variants, args)}
    if not args.no_clip:
        results['clip'] = family('clip', ['vapt'], args)
    total = time.time() - start

    header = ('| backbone | tuned on digits 5-9 | trainable params | test top-1 | from prompts.safetensors '
              '| train wall time |')
    lines = [header, '|---|---|---:|---:|---:|---:|']
    for host, label in (('timm', 'timm ViT'), ('clip', 'open_clip tower')):
        for variant, r in results.get(host, {}).items():
            if variant == 'pretrain':
                lines.append(f'| {label} | (pre-training, digits 0-4: full training) | all | {r["acc_top1"]:.3f} | '
                             f'- | {r["seconds"]:.0f} s |')
            else:
                lines.append(f'| {label} | {NAMES[variant]} | {r["trainable"]:,} | {r["acc_top1"]:.3f} | '
                             f'{r["acc_top1_prompt_file"]:.3f} | {r["seconds"]:.0f} s |')
    epochs = f'{args.pretrain_epochs or args.epochs} pre-training and {args.epochs} tuning epochs'
    print(f'\nimage demo ({epochs}, chance 0.200 on 5 classes, {total:.0f} s in all):\n' + '\n'.join(lines))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results, epochs=args.epochs, seconds=total), f, indent=2)


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
