"""``promptkit-test CONFIG CHECKPOINT [--work-dir DIR] [--dump preds.pkl] ...`` (also ``python tools/test.py``).

CHECKPOINT is an MMEngine ``.pth`` (from tools/train.py or mmaction2) or a ``prompts.safetensors`` export.
Flags follow mmaction2's ``tools/test.py``. A promptkit checkpoint holds the trained tensors only; the frozen
base comes from the config's ``pretrained=`` path and is checked against the checkpoint's fingerprint.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
from collections.abc import Sequence

import promptkit  # noqa: F401

from ..engine.runner_setup import check_data, setup_launcher
from ..engine.validate import skip_bad_eval_samples, validate_data
from ._common import add_hook, build_runner, parse_with_shared_flags, read_config, run_tool, set_launcher_and_work_dir


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='promptkit-test', description='Test (and eval) a prompted model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--dump', type=str, help='dump predictions to a pickle file for offline evaluation')
    return parse_with_shared_flags(parser, argv)


def main(argv: Sequence[str] | None = None) -> None:
    """The console entry point; ``argv`` defaults to ``sys.argv[1:]``. Errors are shown in a few lines."""
    run_tool('promptkit-test', _main, argv)


def _main(argv: Sequence[str] | None = None) -> None:
    """Test a checkpoint or prompt file; ``argv`` defaults to ``sys.argv[1:]``."""
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist; pass the .pth written by '
                                'tools/train.py (e.g. work_dirs/<config>/epoch_<last>.pth) or its prompts.safetensors')
    cfg = read_config(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_launcher_and_work_dir(cfg, args)
    prompt_file = args.checkpoint.endswith('.safetensors')  # a prompt-only export from PromptCheckpointHook
    cfg.load_from = None if prompt_file else args.checkpoint
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump must name a .pkl or .pickle file, got {args.dump}')
        dump = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = [*evaluator, dump] if isinstance(evaluator, (list, tuple)) else [evaluator, dump]
    check_data(cfg, ('test',))
    validate_data(cfg, ('test',))
    if args.skip_bad_samples:
        skip_bad_eval_samples(cfg, ('test',))
    add_hook(cfg, dict(type='promptkit.SampleGuardHook'))
    setup_launcher(cfg)
    runner = build_runner(cfg, args.verbose)
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
