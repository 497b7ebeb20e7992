"""One cost report for prompted models: ``python tools/analysis/prompt_cost.py CONFIG [CONFIG ...]``.

For each config (video or image): trainable / total parameters, prompt-file size, forward FLOPs per view at the
shape the model was built for *with attention counted* (one multiply-add = 2 FLOPs), the extra FLOPs over the same
host without prompts,
latency and throughput, training-step time and peak training memory. Writes ``prompt_cost.md``,
``prompt_cost.csv`` and ``prompt_cost.png`` to ``--work-dir`` and prints the markdown table.

Models are built with random weights (``pretrained=None``): the numbers do not depend on weight values.
On a GPU the forward runs under bf16 autocast and is timed with CUDA events; on CPU in fp32 with the wall clock.

Examples:
    python tools/analysis/prompt_cost.py configs/apt/videomae_demo.py configs/apt/videomae_demo_pretrain.py
    python tools/analysis/prompt_cost.py configs/vapt/vapt_timm_digits_demo.py configs/vapt/vapt_clip_digits_demo.py
    python tools/analysis/prompt_cost.py configs/apt/videomae_ssv2.py configs/apt/videomae_ssv2_vpt-deep.py \\
        --device cuda --repeats 50 --batch 8
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import promptkit  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from promptkit.analysis import markdown_table, measure_config, write_report  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Parameters, FLOPs (attention included), latency and training '
                                                 'cost of prompted models, from their configs')
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='config files')
    parser.add_argument('--work-dir', default='work_dirs/prompt_cost', help='where to write the report')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, help='timed repetitions, median reported (default: cpu 5, cuda 50)')
    parser.add_argument('--warmup', type=int, help='untimed calls first (default: cpu 3, cuda 10)')
    parser.add_argument('--batch', type=int, default=1, help='samples (one view each) per forward for latency')
    parser.add_argument('--train-batch', type=int, help="samples per training step (default: the config's batch)")
    parser.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None,
                        help='bf16 autocast forward and AmpOptimWrapper training (default: on for cuda only)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for torch (default: torch\'s); 1 is steadier on a busy machine')
    parser.add_argument('--no-train', action='store_true', help='skip the training-step measurements')
    parser.add_argument('--accuracy', type=float, nargs='+', metavar='ACC',
                        help='top-1 (%%) of each config, in order, to report PPT; none: no PPT column')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    args = parser.parse_args()
    if args.accuracy is not None and len(args.accuracy) != len(args.configs):
        parser.error(f'--accuracy needs one value per config ({len(args.configs)}), got {len(args.accuracy)}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def main() -> None:
    args = parse_args()
    cuda = args.device == 'cuda'
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # x86 CPUs: denormals in optimizer states slow training steps ~10x
    MMLogger.get_instance('prompt_cost', log_level='ERROR')  # quiet: per-model tables, optimizer notes
    settings = dict(device=args.device, amp=cuda if args.amp is None else args.amp, batch=args.batch,
                    train_batch=args.train_batch, repeats=args.repeats or (50 if cuda else 5),
                    warmup=args.warmup if args.warmup is not None else (10 if cuda else 3),
                    device_name=torch.cuda.get_device_name() if cuda else
                    f'CPU, {torch.get_num_threads()} torch threads')
    rows = []
    for i, path in enumerate(args.configs):
        cfg = Config.fromfile(path)
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        rows.append(measure_config(
            cfg, device=args.device, batch=args.batch, train_batch=args.train_batch, repeats=settings['repeats'],
            warmup=settings['warmup'], amp=settings['amp'], train=not args.no_train,
            accuracy=args.accuracy[i] if args.accuracy else None))
    paths = write_report(rows, args.work_dir, settings)
    print(markdown_table(rows))
    print('\nwritten: ' + ', '.join(paths.values()))


if __name__ == '__main__':
    main()
