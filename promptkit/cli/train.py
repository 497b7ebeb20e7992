"""``promptkit-train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] ...`` (also ``python tools/train.py``).

Flags follow mmaction2's ``tools/train.py`` exactly; this is a thin layer over MMEngine's Runner.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import promptkit  # noqa: F401  (stubs and registries before any config is read)
from mmengine.config import Config

from ..engine.runner_setup import check_data, setup_launcher
from ..engine.validate import skip_bad_eval_samples, validate_data
from ._common import add_hook, build_runner, parse_with_shared_flags, read_config, run_tool, set_launcher_and_work_dir


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='promptkit-train',
                                     description='Train a prompted action recognizer / classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or with no value from the latest in the work dir')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--no-validate', action='store_true', help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual over the base batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-rank-seed', action='store_true', help='different seeds for different ranks')
    parser.add_argument('--deterministic', action='store_true', help='deterministic options for CUDNN')
    return parse_with_shared_flags(parser, argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge CLI arguments into the config, as mmaction2 does."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    set_launcher_and_work_dir(cfg, args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp does not support the custom optimizer wrapper {wrapper!r}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if cfg.get('randomness') is None or args.seed is not None:
        cfg.randomness = dict(seed=args.seed if args.seed is not None else cfg.get('randomness', {}).get('seed'),
                              diff_rank_seed=args.diff_rank_seed, deterministic=args.deterministic)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('optim_wrapper') is not None and 'constructor' not in cfg.optim_wrapper:
        cfg.optim_wrapper.constructor = 'TrainableOptimWrapperConstructor'  # no per-frozen-param warnings
    return cfg


def main(argv: Sequence[str] | None = None) -> None:
    """The console entry point; ``argv`` defaults to ``sys.argv[1:]``. Errors are shown in a few lines."""
    run_tool('promptkit-train', _main, argv)


def _main(argv: Sequence[str] | None = None) -> None:
    """Train from a config; ``argv`` defaults to ``sys.argv[1:]``."""
    args = parse_args(argv)
    cfg = merge_args(read_config(args.config), args)
    splits = ('train', 'val') if cfg.get('val_dataloader') else ('train',)
    check_data(cfg, splits)
    validate_data(cfg, splits)
    if args.skip_bad_samples and 'val' in splits:
        skip_bad_eval_samples(cfg, ('val',))
    add_hook(cfg, dict(type='promptkit.SampleGuardHook', skip_bad_samples=args.skip_bad_samples))
    add_hook(cfg, dict(type='promptkit.ExactResumeHook'))  # random states and sampler position in checkpoints
    sampler = cfg.train_dataloader.get('sampler') or {}
    if sampler.get('type') in ('DefaultSampler', 'mmengine.DefaultSampler'):
        sampler['type'] = 'ResumableSampler'  # DefaultSampler's order, able to resume inside an epoch
    setup_launcher(cfg)
    runner = build_runner(cfg, args.verbose)
    runner.train()


if __name__ == '__main__':
    main()
