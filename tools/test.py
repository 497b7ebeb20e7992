"""Test a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--dump preds.pkl] ...``.

CHECKPOINT is an MMEngine ``.pth`` (from tools/train.py or mmaction2) or a ``prompts.safetensors`` export.
Flags follow mmaction2's ``tools/test.py``. A promptkit checkpoint holds the trained tensors only; the frozen
base comes from the config's ``pretrained=`` path and is checked against the checkpoint's fingerprint.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import promptkit  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from promptkit.engine.runner_setup import (check_data, default_work_dir, set_local_rank,  # noqa: E402
                                           setup_launcher)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a prompted model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--dump', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    # On x86 CPUs denormal floats (tiny optimizer states, warm-up) slow training about 10x; flushing them to
    # zero changes nothing measurable. No effect on GPU kernels.
    torch.set_flush_denormal(True)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist; pass the .pth written by '
                                'tools/train.py (e.g. work_dirs/<config>/epoch_<last>.pth) or its prompts.safetensors')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    prompt_file = args.checkpoint.endswith('.safetensors')  # a prompt-only export from PromptCheckpointHook
    cfg.load_from = None if prompt_file else args.checkpoint
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump must name a .pkl or .pickle file, got {args.dump}')
        dump = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = [*evaluator, dump] if isinstance(evaluator, (list, tuple)) else [evaluator, dump]
    check_data(cfg, ('test',))
    setup_launcher(cfg)
    runner = Runner.from_cfg(cfg)
    if prompt_file:
        from mmengine.model import is_model_wrapper
        from promptkit.artifacts import load_prompts
        load_prompts(runner.model.module if is_model_wrapper(runner.model) else runner.model, args.checkpoint)
    metrics = runner.test()
    if runner.rank == 0:  # also keep the numbers in a file scripts can read
        with open(osp.join(cfg.work_dir, 'test_metrics.json'), 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    main()
