"""What the self-generating demo data sets share: a marker-last staging protocol and a lock across processes.

Files are written into a staging folder inside ``root`` and moved into place; ``root/.complete`` (the generation
arguments as JSON) is written last, so an interrupted run leaves no marker and is redone next time.

A generator writes only into a folder it owns: one it created, or one that was empty (holding nothing but its own
lock, marker or staging folders). It claims such a folder with ``root/.promptkit-generated`` before writing; any
other folder (a user's own data set, say) is refused with :class:`ForeignDataRootError` and left untouched.
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
OWNER = '.promptkit-generated'
_LOCK = '.lock'
_STAGING_PREFIX = '.generating-'


class ForeignDataRootError(FileExistsError):
    """A generated data set was pointed at a folder holding files it did not write."""


def _own_name(name: str) -> bool:
    """Whether an entry of a data root is one of the generator's bookkeeping files (lock, markers, staging)."""
    return name in (MARKER, MARKER + '.tmp', OWNER, _LOCK) or name.startswith(_STAGING_PREFIX)


def check_owned(root: str, what: str = 'a generated data set') -> None:
    """Raise unless ``root`` is missing, empty but for the generator's bookkeeping files, or claimed by it.

    Writes nothing. A folder counts as claimed when it holds ``OWNER`` or a ``MARKER`` of a generation (JSON with
    a ``format_version``; folders written before ``OWNER`` existed carry only that).

    Raises:
        ForeignDataRootError: ``root`` exists and holds files the generator did not write, or is not a folder.
    """
    if not osp.exists(root):
        return
    if not osp.isdir(root):
        raise ForeignDataRootError(f'data root {root} is a file, not a folder: {what} needs a folder of its own. '
                                   'Point data_root at a new folder, e.g. --cfg-options '
                                   'train_dataloader.dataset.data_root=data/my_demo_data')
    entries = sorted(os.listdir(root))
    if OWNER in entries or _is_marker(osp.join(root, MARKER)):
        return
    foreign = [e for e in entries if not _own_name(e)]
    if foreign:
        shown = ', '.join(foreign[:5]) + (f' and {len(foreign) - 5} more' if len(foreign) > 5 else '')
        raise ForeignDataRootError(
            f'data root {root} already holds files promptkit did not write ({shown}); {what} writes only into a '
            'folder it created or an empty one, and leaves yours untouched. Fix: point data_root at a new or empty '
            'folder (e.g. --cfg-options train_dataloader.dataset.data_root=data/my_demo_data, and the same for '
            'val/test), or, to train on your own data, use a dataset type that reads it (VideoDataset, '
            'promptkit.ImageListDataset) instead of a generated one.')


def _is_marker(path: str) -> bool:
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and 'format_version' in found


def claim(root: str, what: str = 'a generated data set') -> None:
    """Create ``root`` (or check it is ours, see :func:`check_owned`) and mark it as the generator's."""
    check_owned(root, what)
    os.makedirs(root, exist_ok=True)
    owner = osp.join(root, OWNER)
    if not osp.exists(owner):
        with open(owner, 'w') as f:
            f.write('written by promptkit: this folder holds a generated data set; promptkit may replace what it '
                    'generated here (videos/, images/, the annotation lists), and nothing else\n')


@contextmanager
def locked(root: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``root/.lock``, so that concurrent ranks generate only once."""
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, _LOCK), 'a') as f:  # 'a': never truncates
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def staged(root: str, items: Sequence[str], what: str = 'a generated data set') -> Iterator[str]:
    """Drop the marker, yield a staging folder inside ``root``, then move ``items`` from it into ``root``
    (replacing what is there: only the paths the generator owns, in a folder it owns, see :func:`claim`)."""
    claim(root, what)
    marker = osp.join(root, MARKER)
    if osp.exists(marker):
        os.remove(marker)
    staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root)
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


def ensure_generated(root: str, wanted: dict[str, Any], generate: Callable[[], Any],
                     what: str = 'a generated data set') -> str:
    """Run ``generate()`` under the lock unless ``root/.complete`` records ``wanted`` (keys the marker holds
    beyond ``wanted``, such as split sizes, are not compared). Returns ``root``.

    Raises:
        ForeignDataRootError: ``root`` holds files the generator did not write (checked before anything is written).
    """
    check_owned(root, what)  # before the lock: a foreign folder gets not even a lock file
    with locked(root):
        check_owned(root, what)
        try:
            with open(osp.join(root, MARKER)) as f:
                found = json.load(f)
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict) or {k: found.get(k) for k in wanted} != wanted:
            generate()
    return root
