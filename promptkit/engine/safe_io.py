"""Checkpoint I/O for MMEngine runs, through MMEngine's own extension points: local writes atomic (a registered
file backend), local checkpoint reads checked (a registered checkpoint-loader scheme).

``install_safe_io()`` is called by the tools; a script driving a ``Runner`` itself can call it too.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path

from mmengine.fileio import LocalBackend, register_backend

from ..artifacts import _atomic_write as atomic_write
from ..checkpoint import install_checked_loader

__all__ = ['AtomicLocalBackend', 'install_safe_io']


class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` whose ``put`` / ``put_text`` write a temporary file beside the target and rename
    it into place: a run killed mid-write leaves the previous file (or none), never half a checkpoint."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        atomic_write(str(filepath), lambda tmp: Path(tmp).write_bytes(obj))

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        atomic_write(str(filepath), lambda tmp: Path(tmp).write_text(obj, encoding=encoding))


def install_safe_io() -> None:
    """Make MMEngine's local checkpoint writes atomic and its local checkpoint reads checked (see
    :func:`promptkit.checkpoint.read_checkpoint`); affects this process only."""
    import mmengine.fileio.io as mmengine_io
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    mmengine_io.backend_instances.clear()  # instances made before this call keep the old class otherwise
    install_checked_loader()
