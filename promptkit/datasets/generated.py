"""What the self-generating demo data sets share: a marker-last staging protocol and a lock across processes.

Files are written into a staging folder inside ``root`` and moved into place; ``root/.complete`` (the generation
arguments as JSON) is written last, so an interrupted run leaves no marker and is redone next time.
"""
from __future__ import annotations

import fcntl
import json
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

MARKER = '.complete'


@contextmanager
def locked(root: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``root/.lock``, so that concurrent ranks generate only once."""
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, '.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def staged(root: str, items: Sequence[str]) -> Iterator[str]:
    """Drop the marker, yield a staging folder inside ``root``, then move ``items`` from it into ``root``
    (replacing what is there: only the paths the generator owns)."""
    os.makedirs(root, exist_ok=True)
    marker = osp.join(root, MARKER)
    if osp.exists(marker):
        os.remove(marker)
    staging = tempfile.mkdtemp(prefix='.generating-', dir=root)
    try:
        yield staging
        for item in items:
            dest = osp.join(root, item)
            if osp.isdir(dest):
                shutil.rmtree(dest)
            elif osp.exists(dest):
                os.remove(dest)
            os.replace(osp.join(staging, item), dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_marker(root: str, meta: dict[str, Any]) -> None:
    """Write ``root/.complete`` atomically: the last step of a generation."""
    marker = osp.join(root, MARKER)
    with open(marker + '.tmp', 'w') as f:
        json.dump(meta, f, indent=1)
    os.replace(marker + '.tmp', marker)


def ensure_generated(root: str, wanted: dict[str, Any], generate: Callable[[], Any]) -> str:
    """Run ``generate()`` under the lock unless ``root/.complete`` records ``wanted`` (keys the marker holds
    beyond ``wanted``, such as split sizes, are not compared). Returns ``root``."""
    with locked(root):
        try:
            with open(osp.join(root, MARKER)) as f:
                found = json.load(f)
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict) or {k: found.get(k) for k in wanted} != wanted:
            generate()
    return root
