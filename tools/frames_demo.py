"""The image-to-video demo, end to end on CPU: ``python tools/frames_demo.py`` (``make frames-demo``).

A frozen *image* tower, run frame by frame (``promptkit.FrameTower``), on the generated motion clips, where the class
is the direction of motion (right / left / down / up), so no single frame, and no unordered set of frames, tells it:

1. ``tools/train.py configs/vapt/timm_digits-pretrain_demo.py``: the image demo's tiny timm ViT trained on single
   images of another task, handwritten digits 0-4, for the image demo's 30 epochs (``--pretrain-epochs``) into
   ``work_dirs/frames_demo_tower`` (skipped with ``--skip-pretrain`` when its checkpoint exists).
2. ``tools/train.py configs/st_adapter/frames_demo_linear-probe.py``: the frame-averaged linear probe on that frozen
   tower (class tokens averaged over the frames, frozen final norm, linear head), then ``tools/test.py``.
3. ``tools/train.py configs/st_adapter/frames_demo.py``: ST-Adapter on the same frozen tower and head, then
   ``tools/test.py`` on the checkpoint and on the exported ``prompts.safetensors``.

Prints a table (trainable parameters, test top-1, wall time); results go to ``work_dirs/``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from image_demo import ROOT, run, schedule, trainable  # noqa: E402  (the image demo's helpers)

PRETRAIN = 'configs/vapt/timm_digits-pretrain_demo.py'
RUNS = (('linear probe (frame-averaged)', 'configs/st_adapter/frames_demo_linear-probe.py',
         'linear-probe_frames_demo'),
        ('ST-Adapter', 'configs/st_adapter/frames_demo.py', 'st-adapter_frames_demo'))


def test(config: str, checkpoint: str, work_dir: str, options: list[str]) -> float:
    run('tools/test.py', config, checkpoint, '--work-dir', work_dir, '--cfg-options', *options)
    with open(osp.join(ROOT, work_dir, 'test_metrics.json')) as f:
        return json.load(f)['acc/top1']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs', help='parent folder of the runs')
    parser.add_argument('--skip-pretrain', action='store_true', help='reuse an existing stage-1 checkpoint')
    parser.add_argument('--pretrain-epochs', type=int, default=30, help='epochs of the digits pre-training')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()

    start = time.time()
    pre_dir = osp.join(args.work_dir, 'frames_demo_tower')
    tower = osp.join(pre_dir, f'epoch_{args.pretrain_epochs}.pth')
    results = {}
    if not (args.skip_pretrain and osp.isfile(osp.join(ROOT, tower))):
        results['pretrain'] = dict(seconds=run('tools/train.py', PRETRAIN, '--work-dir', pre_dir, '--cfg-options',
                                               *schedule(args.pretrain_epochs)))
    options = [f'model.backbone.backbone.pretrained={tower}']
    for name, config, folder in RUNS:
        work_dir = osp.join(args.work_dir, folder)
        seconds = run('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options)
        ckpt = sorted(f for f in os.listdir(osp.join(ROOT, work_dir)) if f.startswith('epoch_') and f.endswith('.pth'))
        r = dict(seconds=seconds, trainable=trainable(work_dir),
                 acc_top1=test(config, osp.join(work_dir, ckpt[-1]), work_dir, options))
        if 'linear-probe' not in config:
            r['acc_top1_prompt_file'] = test(config, osp.join(work_dir, 'prompts.safetensors'), work_dir, options)
        results[name] = r
    total = time.time() - start

    lines = ['| frozen digits tower, frame by frame | trainable params | test top-1 | train wall time |',
             '|---|---:|---:|---:|']
    for name, r in results.items():
        if name != 'pretrain':
            lines.append(f'| {name} | {r["trainable"]:,} | {r["acc_top1"]:.3f} | {r["seconds"]:.0f} s |')
    extra = results['ST-Adapter'].get('acc_top1_prompt_file')
    print(f'\nimage-to-video demo (motion directions, chance 0.250, {total:.0f} s in all):\n' + '\n'.join(lines) +
          f'\nST-Adapter from prompts.safetensors: {extra:.3f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results, seconds=total), f, indent=2)


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
