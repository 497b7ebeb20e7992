"""A tiny synthetic action-recognition dataset whose classes need temporal reasoning.

Each clip shows one bright shape (a filled square, circle or cross of random colour and size) moving in a straight
line over a dark, noisy background. The class is the direction of motion and nothing else:

* ``task='axis'``: ``right``, ``left``, ``down``, ``up``;
* ``task='diagonal'``: ``down-right``, ``down-left``, ``up-right``, ``up-left``.

Start positions are drawn so that a clip of one direction has exactly the distribution of the time-reversed clip of
the opposite direction. So a single frame, and even the unordered set of a clip's frames, says nothing about the sign
of the motion: an order-invariant model (e.g. TSN-style frame averaging) can tell the motion's axis (``right/left``
from ``down/up``, or ``\\`` from ``/``) but not its direction, and is capped at 50 % accuracy where chance is 25 %.

The clips are real H.264 ``.mp4`` files (PyAV, ``libx264``; ``mpeg4`` where ``libx264`` is unavailable) with
mmaction2 annotation lists, so the stock ``DecordInit -> SampleFrames -> DecordDecode`` pipeline reads them::

    root/
      classes.txt             one class name per line, line i is label i
      train.txt, test.txt     "train/right_0.mp4 0", paths relative to root/videos
      videos/train/*.mp4, videos/test/*.mp4
      .complete               written last; JSON of the generation arguments

``DemoMotionDataset`` (``type='promptkit.DemoMotionDataset'`` in configs) generates the data on first use.
"""
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import av
import numpy as np

from promptkit._compat import stub_mmaction_drn

stub_mmaction_drn()  # Before the first import of mmaction.datasets / mmaction.models.

from mmaction.datasets import VideoDataset  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from promptkit.registry import DATASETS  # noqa: E402

from .generated import ensure_generated, staged, write_marker  # noqa: E402

__all__ = ['DIRECTIONS', 'TASKS', 'generate_motion_dataset', 'ensure_motion_dataset', 'DemoMotionDataset']

#: Unit motion per direction as (dx, dy) in image coordinates (x to the right, y down).
DIRECTIONS: dict[str, tuple[int, int]] = {
    'right': (1, 0), 'left': (-1, 0), 'down': (0, 1), 'up': (0, -1),
    'down-right': (1, 1), 'down-left': (-1, 1), 'up-right': (1, -1), 'up-left': (-1, -1),
}
#: The label sets; label i is the i-th name.
TASKS: dict[str, tuple[str, ...]] = {
    'axis': ('right', 'left', 'down', 'up'),
    'diagonal': ('down-right', 'down-left', 'up-right', 'up-left'),
}
SHAPES = ('square', 'circle', 'cross')
SPLITS = ('train', 'test')
FPS = 8
# Bumped whenever the rendering changes, so that ensure_motion_dataset regenerates stale data.
_FORMAT_VERSION = 1
# Speed in px/frame along each moving axis (diagonals move this much along x and along y).
_SPEED_RANGE = (1.0, 1.5)
_SHAPE_SIZE_RANGE = (5, 9)  # Inclusive side length / diameter in px.
_WHAT = 'the generated demo data set (promptkit.DemoMotionDataset)'


def _resolve_classes(task: str, classes: Sequence[str] | None) -> tuple[str, ...]:
    """Return the class names of ``task``, or ``classes`` when given (any names of ``DIRECTIONS``).

    Args:
        task: A key of ``TASKS``.
        classes: Optional explicit class names overriding the task's label set.

    Returns:
        The class names; label i is the i-th name.
    """
    if classes is None:
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; expected one of {sorted(TASKS)}')
        return TASKS[task]
    classes = tuple(classes)
    unknown = [c for c in classes if c not in DIRECTIONS]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f'classes must be distinct names of {sorted(DIRECTIONS)}, got {list(classes)}')
    return classes


def _render_clip(rng: np.random.Generator, direction: tuple[int, int], num_frames: int, size: int) -> np.ndarray:
    """Render one clip of a shape moving in ``direction``.

    Args:
        rng: The clip's own random generator.
        direction: Unit motion (dx, dy), each in {-1, 0, 1}.
        num_frames: Number of frames T.
        size: Frame height and width S.

    Returns:
        uint8 array of shape (T, S, S, 3), RGB.
    """
    shape = SHAPES[rng.integers(len(SHAPES))]
    side = int(rng.integers(_SHAPE_SIZE_RANGE[0], _SHAPE_SIZE_RANGE[1] + 1))
    side = min(side, size // 2)
    colour = rng.uniform(150, 255, size=3)
    colour[rng.integers(3)] = 255.0  # Bright in at least one channel.
    background = rng.uniform(0, 60, size=3)
    static_noise = rng.normal(0, 6, size=(size, size, 3))

    # The shape's centre may range over [lo, hi] on each axis without leaving the frame.
    radius = side / 2
    lo, hi = radius, size - radius
    speed = float(rng.uniform(*_SPEED_RANGE))
    speed = min(speed, (hi - lo) / max(num_frames - 1, 1))  # Clamp for small frames / long clips.
    travel = speed * (num_frames - 1)
    start = np.empty(2)
    for axis, d in enumerate(direction):
        if d == 0:
            start[axis] = rng.uniform(lo, hi)
        else:
            # Moving by +travel from u ~ U[lo, hi - travel]; moving by -travel from its mirror image, so the two
            # directions are time reversals of each other in distribution.
            u = rng.uniform(lo, hi - travel)
            start[axis] = u if d > 0 else (lo + hi) - u
    t = np.arange(num_frames, dtype=np.float64)
    # (T, 2) centre trajectory as (x, y).
    centres = start[None, :] + speed * t[:, None] * np.asarray(direction, dtype=np.float64)[None, :]

    # Pixel-centre coordinates, broadcast against the trajectory: (T, S, S).
    coords = np.arange(size, dtype=np.float64) + 0.5
    dx = np.abs(coords[None, None, :] - centres[:, 0, None, None])
    dy = np.abs(coords[None, :, None] - centres[:, 1, None, None])
    if shape == 'square':
        mask = (dx <= radius) & (dy <= radius)
    elif shape == 'circle':
        mask = dx ** 2 + dy ** 2 <= radius ** 2
    else:  # cross: two bars of width ~side/3
        arm = max(side / 6, 0.75)
        mask = ((dx <= radius) & (dy <= arm)) | ((dx <= arm) & (dy <= radius))

    frames = background + static_noise  # (S, S, 3)
    frames = np.broadcast_to(frames, (num_frames, size, size, 3)).copy()
    frames[mask] = colour
    frames += rng.normal(0, 4, size=frames.shape)  # Temporal noise on every pixel.
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _write_mp4(path: str, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode RGB frames as a near-lossless H.264 (or MPEG-4 part 2) ``.mp4``.

    Args:
        path: Output file path.
        frames: uint8 array (T, H, W, 3) with even H and W.
        fps: Frame rate.
    """
    with av.open(path, 'w') as container:
        if 'libx264' in av.codecs_available:
            stream = container.add_stream('libx264', rate=fps)
            # Near-lossless, no B-frames (simpler seeking for decord), single thread for reproducible output.
            stream.options = {'crf': '10', 'preset': 'veryfast', 'bf': '0', 'threads': '1'}
        else:
            stream = container.add_stream('mpeg4', rate=fps)
            stream.options = {'qscale': '2'}
            stream.bit_rate = 4_000_000
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = 'yuv420p'
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():  # Flush.
            container.mux(packet)


def generate_motion_dataset(root: str, task: str = 'axis', num_train_per_class: int = 24, num_test_per_class: int = 8,
                            num_frames: int = 16, size: int = 32, seed: int = 0,
                            classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the moving-shape dataset under ``root``, replacing any earlier one there (refusing a folder it did not
    create, see :func:`promptkit.datasets.generated.check_owned`).

    The clips are rendered into a staging folder inside ``root`` and moved into place; the ``.complete`` marker is
    written last, so an interrupted run leaves no marker. Every clip draws from its own generator seeded by
    ``(seed, split, label, index)``, so a clip does not depend on how many others are generated.

    Args:
        root: Dataset folder (created if missing).
        task: ``'axis'`` (right, left, down, up) or ``'diagonal'`` (down-right, down-left, up-right, up-left).
        num_train_per_class: Training clips per class.
        num_test_per_class: Test clips per class.
        num_frames: Frames per clip.
        size: Frame height and width in px; must be even (H.264 with yuv420p).
        seed: Base random seed.
        classes: Optional class names (any of ``DIRECTIONS``) overriding the task's label set.

    Returns:
        The generation metadata, also stored in ``root/.complete``: the arguments (``classes`` resolved), plus
        ``num_train`` and ``num_test``.
    """
    if size % 2 or size < 8:
        raise ValueError(f'size must be even and at least 8, got {size}')
    if num_frames < 2:
        raise ValueError(f'num_frames must be at least 2, got {num_frames}')
    names = _resolve_classes(task, classes)
    meta = _metadata(task, num_train_per_class, num_test_per_class, num_frames, size, seed, names)
    counts = {'train': num_train_per_class, 'test': num_test_per_class}
    with staged(root, ('videos', 'train.txt', 'test.txt', 'classes.txt'), _WHAT) as staging:
        for split_id, split in enumerate(SPLITS):
            os.makedirs(osp.join(staging, 'videos', split))
            lines = []
            for label, name in enumerate(names):
                for idx in range(counts[split]):
                    rng = np.random.default_rng([seed, split_id, label, idx])
                    frames = _render_clip(rng, DIRECTIONS[name], num_frames, size)
                    rel = f'{split}/{name}_{idx}.mp4'
                    _write_mp4(osp.join(staging, 'videos', rel), frames)
                    lines.append(f'{rel} {label}\n')
            with open(osp.join(staging, f'{split}.txt'), 'w') as f:
                f.writelines(lines)
        with open(osp.join(staging, 'classes.txt'), 'w') as f:
            f.writelines(f'{name}\n' for name in names)
    meta.update(num_train=num_train_per_class * len(names), num_test=num_test_per_class * len(names))
    write_marker(root, meta)
    return meta


def _metadata(task: str, num_train_per_class: int, num_test_per_class: int, num_frames: int, size: int, seed: int,
              classes: Sequence[str]) -> dict[str, Any]:
    """The generation arguments as stored in the marker (what ``ensure_motion_dataset`` compares)."""
    return dict(format_version=_FORMAT_VERSION, task=task, num_train_per_class=int(num_train_per_class),
                num_test_per_class=int(num_test_per_class), num_frames=int(num_frames), size=int(size),
                seed=int(seed), classes=list(classes))


def ensure_motion_dataset(root: str, **kwargs: Any) -> str:
    """Generate the dataset under ``root`` unless a complete one with the same arguments is already there.

    Args:
        root: Dataset folder.
        **kwargs: Arguments of ``generate_motion_dataset`` (defaults filled in before comparing).

    Returns:
        ``root``.
    """
    args = dict(task='axis', num_train_per_class=24, num_test_per_class=8, num_frames=16, size=32, seed=0,
                classes=None)
    unknown = set(kwargs) - set(args)
    if unknown:
        raise TypeError(f'unexpected arguments for generate_motion_dataset: {sorted(unknown)}')
    args.update(kwargs)
    names = _resolve_classes(args['task'], args['classes'])
    wanted = _metadata(args['task'], args['num_train_per_class'], args['num_test_per_class'], args['num_frames'],
                       args['size'], args['seed'], names)
    return ensure_generated(root, wanted, lambda: generate_motion_dataset(root, **args), _WHAT)


@DATASETS.register_module()
class DemoMotionDataset(VideoDataset):
    """The moving-shape dataset as an mmaction2 ``VideoDataset``, generated under ``data_root`` on first use.

    Configs name it ``type='promptkit.DemoMotionDataset'``; the class names are set as ``metainfo['classes']``.

    Args:
        ann_file: Annotation list; relative paths are resolved against ``data_root``. Defaults to
            ``<split>.txt``.
        data_root: Dataset folder.
        task: ``'axis'`` or ``'diagonal'``.
        split: ``'train'`` or ``'test'``; picks the default ``ann_file``.
        generate_kwargs: Further arguments of ``generate_motion_dataset`` (e.g. ``num_train_per_class``).
        **kwargs: Arguments of ``VideoDataset`` (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, ann_file: str | None = None, data_root: str = 'data/demo_motion', task: str = 'axis',
                 split: str = 'train', generate_kwargs: dict | None = None, **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        data_root = osp.abspath(data_root)
        generate_kwargs = dict(generate_kwargs or {})
        ensure_motion_dataset(data_root, task=task, **generate_kwargs)
        names = _resolve_classes(task, generate_kwargs.get('classes'))
        if ann_file is None:
            ann_file = f'{split}.txt'
        if not osp.isabs(ann_file):
            ann_file = osp.join(data_root, ann_file)
        kwargs.setdefault('metainfo', dict(classes=names))
        kwargs.setdefault('pipeline', [])
        # Built from promptkit's registry outside any scope, un-prefixed transforms (DecordInit, ...) would be
        # looked up in MMEngine's root and not found: resolve them in mmaction's scope then.
        current = DefaultScope.get_current_instance()
        scope = 'mmaction' if current is None or current.scope_name == 'promptkit' else None
        with DefaultScope.overwrite_default_scope(scope):
            super().__init__(ann_file=ann_file, data_prefix=dict(video=osp.join(data_root, 'videos')),
                             data_root=data_root, **kwargs)
