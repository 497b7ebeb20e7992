"""What the console tools share: the hooks they add, a terminal that shows progress and results (environment and
config dump go to the log file only, unless ``--verbose``), and errors shown in a few lines with a "did you mean"
(the full traceback goes to the log file, or to the terminal with ``--debug``)."""
from __future__ import annotations

import difflib
import itertools
import logging
import os
import os.path as osp
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

#: Messages MMEngine logs once per run that belong in the log file, not on the terminal.
_FILE_ONLY = ('Config:\n', '\n' + '-' * 60 + '\nSystem environment:', 'Hooks will be executed in the following order')


def add_hook(cfg: Config, hook: dict) -> None:
    """Append ``hook`` to ``cfg.custom_hooks`` unless a hook of that type is there already."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == hook['type'] for h in hooks):
        hooks.append(hook)
    cfg.custom_hooks = hooks


class _FileOnly(logging.Filter):
    """Keeps the environment, config and hook-order dumps off a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_FILE_ONLY)


#: Counts the runs of this process (unique logger names, see build_runner).
_RUNS = itertools.count()


class QuietRunner(Runner):
    """MMEngine's ``Runner`` whose terminal output leaves out the environment, config and hook-order dumps (they
    stay in the log file). Only ``build_logger`` differs."""

    def build_logger(self, *args: Any, **kwargs: Any):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                if not any(isinstance(f, _FileOnly) for f in handler.filters):
                    handler.addFilter(_FileOnly())
        return logger


def read_config(path: str) -> Config:
    """What both tools do before anything else: flush denormals, make checkpoint I/O checked and atomic, and read
    the config, given as a path or as a packaged ``promptkit::<path>`` name."""
    import torch

    from ..config_files import resolve_config
    from ..engine.safe_io import install_safe_io
    # On x86 CPUs denormal floats (tiny optimizer states, warm-up) slow training about 10x; flushing them to
    # zero changes nothing measurable. No effect on GPU kernels.
    torch.set_flush_denormal(True)
    install_safe_io()
    return Config.fromfile(resolve_config(path))


def build_runner(cfg: Config, verbose: bool = False) -> Runner:
    """``Runner.from_cfg``, quiet on the terminal unless ``verbose``.

    MMEngine names the run's logger after the config and the time to the second, and reuses a logger of that name:
    a second run started in the same process within the same second would log through the first run's handlers
    (whose streams may be closed). Unless the config names its experiment, the name gets a per-process counter.
    """
    if not cfg.get('experiment_name'):
        stem = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg.experiment_name = f'{stem}_run{next(_RUNS)}'  # MMEngine appends the timestamp
    return (Runner if verbose else QuietRunner).from_cfg(cfg)


def parse_with_shared_flags(parser: Any, argv: Sequence[str] | None) -> Any:
    """Add the flags promptkit-train and promptkit-test share (mmaction2's ``--cfg-options``, ``--launcher`` and
    ``--local-rank``; promptkit's ``--skip-bad-samples``, ``--verbose``, ``--debug``), parse ``argv`` and export the
    local rank."""
    from mmengine.config import DictAction

    from ..engine.runner_setup import set_local_rank

    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--skip-bad-samples', action='store_true',
                        help='log and skip videos/images that cannot be decoded instead of stopping')
    parser.add_argument('--verbose', action='store_true',
                        help='also print the environment, the full config and the hook order (always in the log)')
    parser.add_argument('--debug', action='store_true', help='on an error, print the full traceback')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def set_launcher_and_work_dir(cfg: Config, args: Any) -> None:
    """``cfg.launcher`` from ``--launcher``; the work dir from ``--work-dir``, else the config's, else
    ``work_dirs/<config name>`` (mmaction2's rule)."""
    from ..engine.runner_setup import default_work_dir

    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)


_NOT_IN_REGISTRY = re.compile(r"[`'\"]?([\w.]+)[`'\"]? is not in the (?:([\w]+)::)?(\w+) registry")


_UNKNOWN_PROMPT = re.compile(r"unknown prompt type '([\w.]+)'")


def did_you_mean(message: str) -> str:
    """For MMEngine's "X is not in the scope::name registry": the closest registered names (difflib), or ''."""
    m = _NOT_IN_REGISTRY.search(message)
    if m:
        wanted, _, name = m.groups()
    else:
        m = _UNKNOWN_PROMPT.search(message)
        if not m or 'did you mean' in message:
            return ''
        wanted, name = m.group(1), 'prompt'
    names = set()
    from mmengine import registry as mmengine_registry
    import promptkit.registry as promptkit_registry
    roots = [r for r in vars(mmengine_registry).values() if isinstance(r, mmengine_registry.Registry)]
    roots += [r for r in vars(promptkit_registry).values() if isinstance(r, mmengine_registry.Registry)]
    try:
        import mmaction.registry as mmaction_registry
        roots += [r for r in vars(mmaction_registry).values() if isinstance(r, mmengine_registry.Registry)]
    except ImportError:
        pass
    for reg in roots:
        if reg.name != name:
            continue
        reg.import_from_location()
        prefix = '' if reg.scope in ('mmengine', 'mmaction') or reg.parent is None else f'{reg.scope}.'
        names |= {prefix + k for k in reg.module_dict}
    bare = wanted.split('.')[-1]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    close += [n for n in difflib.get_close_matches(bare, {n.split('.')[-1]: n for n in names}, n=3, cutoff=0.6)
              if n not in close]
    close = [n for n in close if n != wanted]
    if not close:
        return ''
    full = {n.split('.')[-1]: n for n in names}
    shown = [full.get(n, n) for n in close][:3]
    return f'did you mean {" or ".join(repr(n) for n in dict.fromkeys(shown))}?'


def _log_files() -> list[str]:
    from mmengine.logging import MMLogger
    if not MMLogger.check_instance_created(MMLogger.get_current_instance().instance_name):
        return []
    logger = MMLogger.get_current_instance()
    return [h.baseFilename for h in logger.handlers if isinstance(h, logging.FileHandler)]


def _short(message: str) -> str:
    """Drop MMEngine's "class `X` in module: " wrappers around a nested build error."""
    return re.sub(r'class `\w+` in [\w.]+: ', '', message).strip()


def run_tool(prog: str, main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None) -> Any:
    """Run a tool's ``main``; an error is shown in a few lines (type, message, "did you mean", where the traceback
    is) and exits with status 1, unless ``--debug`` is in ``argv`` (then it propagates with its traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # A fresh current logger, as a new process starts with: run in-process after an earlier run (a notebook, the
    # tests), MMEngine's 'current' logger would still be that run's, whose log file may be closed or gone.
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'{prog}-{os.getpid()}-{next(_RUNS)}')
    try:
        return main(args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as e:
        if '--debug' in args:
            raise
        text = ''.join(traceback.format_exception(e))
        files = _log_files()
        for path in files:
            with open(path, 'a') as f:
                f.write(f'{prog} failed:\n{text}')
        message = _short(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))
        lines = [f'{prog}: error: {type(e).__name__}: {message}']
        hint = did_you_mean(message)
        if hint:
            lines.append(f'{prog}: {hint}')
        where = f'in {files[0]}' if files else 'not logged (the run had not started)'
        lines.append(f'{prog}: full traceback {where}; rerun with --debug to print it')
        print('\n'.join(lines), file=sys.stderr)
        sys.exit(1)
