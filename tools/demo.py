"""The built-in demo, end to end on CPU in a few minutes: ``python tools/demo.py``.

1. ``tools/train.py configs/apt/videomae_demo_pretrain.py``: a tiny VideoMAE-shaped ViT trained from scratch on
   generated clips of shapes moving right / left / down / up (the "pre-trained" base).
2. ``tools/train.py configs/apt/videomae_demo.py``: Attention Prompt Tuning of that frozen base on a new task,
   diagonal motions, training prompts + head + fc_norm only.
3. ``tools/test.py`` on the prompt-tuned checkpoint, then on the exported ``prompts.safetensors``.

The data sets are generated under ``data/`` the first time. Results go to ``work_dirs/``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run(*args: str, log: str) -> None:
    """Run a tool, its output going to ``log`` (the terminal gets one line per step, and the log's last lines
    if the step fails)."""
    cmd = [sys.executable, *args]
    print('+', ' '.join(args), flush=True)
    os.makedirs(osp.dirname(osp.join(ROOT, log)), exist_ok=True)
    with open(osp.join(ROOT, log), 'w') as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        with open(osp.join(ROOT, log)) as f:
            print(''.join(f.readlines()[-40:]), file=sys.stderr)
        sys.exit(f'demo: step failed (exit {done.returncode}); full output in {log}')


def latest(pattern: str) -> str:
    files = sorted(glob.glob(pattern if osp.isabs(pattern) else osp.join(ROOT, pattern)), key=osp.getmtime)
    if not files:
        raise FileNotFoundError(f'expected a file matching {pattern}')
    return files[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs', help='parent folder of the two runs')
    parser.add_argument('--skip-pretrain', action='store_true', help='reuse an existing stage-1 checkpoint')
    args = parser.parse_args()
    pre_dir, apt_dir = osp.join(args.work_dir, 'videomae_demo_pretrain'), osp.join(args.work_dir, 'videomae_demo')

    base = osp.join(pre_dir, 'epoch_30.pth')
    if not (args.skip_pretrain and osp.isfile(osp.join(ROOT, base))):
        print('stage 1: pre-training the base from scratch (generates the demo clips the first time)')
        run('tools/train.py', 'configs/apt/videomae_demo_pretrain.py', '--work-dir', pre_dir,
            log=osp.join(pre_dir, 'train_output.txt'))
    print('stage 2: Attention Prompt Tuning of the frozen base on the diagonal directions')
    run('tools/train.py', 'configs/apt/videomae_demo.py', '--work-dir', apt_dir,
        '--cfg-options', f'model.backbone.pretrained={base}', log=osp.join(apt_dir, 'train_output.txt'))
    ckpt = latest(osp.join(apt_dir, 'epoch_*.pth'))
    accs = {}
    for name, path in (('checkpoint', ckpt), ('prompt file', osp.join(apt_dir, 'prompts.safetensors'))):
        run('tools/test.py', 'configs/apt/videomae_demo.py', path, '--work-dir', apt_dir,
            '--cfg-options', f'model.backbone.pretrained={base}', log=osp.join(apt_dir, f'test_output_{name[0]}.txt'))
        with open(osp.join(ROOT, apt_dir, 'test_metrics.json')) as f:
            accs[name] = json.load(f)['acc/top1']
    print(f'\ndemo: prompt-tuned test top-1 accuracy {accs["checkpoint"]:.3f} from {osp.relpath(ckpt, ROOT)}, '
          f'{accs["prompt file"]:.3f} from prompts.safetensors (chance 0.25, 4 classes)')
    print(f'demo: curves {osp.join(apt_dir, "curves.png")} and {osp.join(pre_dir, "curves.png")}; prompts, '
          f'prompt_config.json, confusion matrices and logs (train_output.txt, test_output_*.txt) in {apt_dir}')


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
