"""The configs that ship inside the package, and the ``promptkit::`` prefix that names them.

``promptkit::apt/videomae_ssv2.py`` is ``configs/apt/videomae_ssv2.py`` of the repository, resolved the way
MMEngine resolves ``mmaction::...``: through ``<package>/.mim/configs``. In a clone, ``promptkit/.mim/configs`` is a
symbolic link to the top-level ``configs/`` (the one copy in git); a built wheel holds the files themselves.

MMEngine 0.10 knows only its own list of prefixes (``mmengine.config.utils.MODULE2PACKAGE``) and finds the folder
of the package through ``pkg_resources``; an editable install makes that report ``site-packages/promptkit``, which
does not exist. So :func:`register_prefix` (run by ``import promptkit``) maps the ``promptkit`` prefix to this
module's name, which no distribution has: MMEngine then falls back to ``importlib``'s location of this module, i.e.
the folder of the ``promptkit`` that is actually imported (a clone, an editable install or a wheel alike).
Nothing of MMEngine is patched; one entry is added to its table.

``_base_ = 'promptkit::apt/videomae_demo.py'`` works in any config read after ``import promptkit``: promptkit's
tools and the Python API import it first; a config's own ``custom_imports`` come too late, since MMEngine reads the
bases before it imports them. On the command line, :func:`resolve_config` turns the prefixed name into the file.
"""
from __future__ import annotations

import os.path as osp

PREFIX = 'promptkit::'
#: Where the packaged configs live (``promptkit/.mim/configs``; a link to ``configs/`` in a clone).
CONFIG_ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')

__all__ = ['PREFIX', 'CONFIG_ROOT', 'register_prefix', 'resolve_config', 'list_configs']


def register_prefix() -> None:
    """Let MMEngine resolve ``promptkit::<path>`` (in ``_base_`` and in ``Config._get_cfg_path``)."""
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('promptkit', __name__)


def list_configs() -> list[str]:
    """Every packaged config, as ``promptkit::<path>`` names (bases under ``_base_/`` left out)."""
    import glob
    found = glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    names = sorted(osp.relpath(p, CONFIG_ROOT) for p in found)
    return [PREFIX + n for n in names if not n.startswith('_base_')]


def resolve_config(path: str) -> str:
    """The file of a config given as a path or as ``promptkit::<path>``.

    Args:
        path: A config file path, or a packaged config name such as ``'promptkit::apt/videomae_demo.py'``.

    Returns:
        ``path`` itself when it has no prefix; otherwise the packaged file, found with MMEngine's own rule.

    Raises:
        FileNotFoundError: The packaged config does not exist (lists where it was looked for and what exists).
    """
    if PREFIX not in path:
        return path
    register_prefix()
    from mmengine.config import Config
    name = path.split(PREFIX, 1)[1]
    try:
        file, _ = Config._get_cfg_path(path, '')  # MMEngine's resolution of `pkg::path` (a private static helper)
    except (FileNotFoundError, ValueError, AssertionError) as e:
        near = [c for c in list_configs() if osp.dirname(c[len(PREFIX):]) == osp.dirname(name)] or list_configs()
        raise FileNotFoundError(f'{path}: no config {name!r} in {CONFIG_ROOT} ({e}); packaged configs there '
                                f'include {near[:12]}') from None
    return file
