"""Checks before any work: the annotation lists a config points to, every problem at once with file and line; and a
hook that names the sample (path, decoder, reason) when a video or image cannot be decoded.

The lists are read with the conventions of the data set classes that read them later: mmaction2's
``VideoDataset`` (``path label`` per line, split by its ``delimiter``; ``path l1 l2 ...`` when ``multi_class``;
a bare ``path`` is an unlabelled line), mmaction2's ``RawframeDataset`` (``frame_dir total_frames label``) and
promptkit's ``ImageListDataset`` (``path label`` with the label last, or a ``.json`` mapping path to label). Any
other data set is fully initialised and its ``data_list`` checked, without line numbers.
"""
from __future__ import annotations

import json
import os.path as osp
from collections.abc import Iterator, Sequence
from typing import Any

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..registry import HOOKS

__all__ = ['DataValidationError', 'BadSampleError', 'validate_data', 'check_list', 'model_num_classes',
           'SampleGuardHook']

#: Problems listed per annotation list before "... and N more".
MAX_LISTED = 20


class DataValidationError(ValueError):
    """An annotation list is missing, empty, malformed, or names labels or files that do not fit."""


class BadSampleError(RuntimeError):
    """A listed video or image cannot be decoded (or another transform failed on it)."""


def model_num_classes(model: Any) -> int | None:
    """The class count of a model config: ``cls_head.num_classes`` (mmaction2) or ``num_classes`` (image
    classifiers); None when the config names none."""
    if not isinstance(model, dict):
        return None
    head = model.get('cls_head')
    if isinstance(head, dict) and isinstance(head.get('num_classes'), int):
        return head['num_classes']
    return model['num_classes'] if isinstance(model.get('num_classes'), int) else None


def _parse(path: str, kind: str, delimiter: str = ' ',
           multi_class: bool = False) -> tuple[list[tuple[str, str, list[int]]], list[str]]:
    """Read one list: ``([(where, relative path, labels)], problems)``."""
    entries, problems = [], []
    if kind == 'image' and path.endswith('.json'):
        try:
            with open(path) as f:
                mapping = json.load(f)
        except ValueError as e:
            return [], [f'{path}: not valid JSON ({e})']
        if not isinstance(mapping, dict):
            return [], [f'{path}: expected a JSON object {{"relative/path.jpg": label}}, got a '
                        f'{type(mapping).__name__}']
        for rel, label in mapping.items():
            if isinstance(label, int) and not isinstance(label, bool):
                entries.append((f'{path}: {rel!r}', rel, [label]))
            else:
                problems.append(f'{path}: {rel!r}: label {label!r} is not an int')
        return entries, problems
    with open(path, errors='replace') as f:
        lines = f.read().splitlines()
    expected = {'video': '"relative/path.mp4 label"', 'rawframe': '"frame_dir total_frames label"',
                'image': '"relative/path.jpg label"'}[kind]
    for i, line in enumerate(lines, 1):
        if not line.strip():
            if kind == 'image':
                continue  # ImageListDataset skips blank lines
            problems.append(f'{path}:{i}: blank line (mmaction2 reads it as a sample with no file)')
            continue
        where = f'{path}:{i}'
        if kind == 'image':
            parts = line.rstrip('\n').rsplit(maxsplit=1)
        else:
            parts = line.strip().split(delimiter)
        try:
            if kind == 'rawframe':
                if len(parts) < 3:
                    raise ValueError
                int(parts[1])
                rel, labels = parts[0], [int(x) for x in parts[2:]]
            elif kind == 'video' and multi_class:
                rel, labels = parts[0], [int(x) for x in parts[1:]]
            elif kind == 'video' and len(parts) == 1:
                problems.append(f'{where}: {line!r} has no label (mmaction2 reads it as an unlabelled sample); '
                                f'expected {expected}')
                continue
            elif len(parts) == 2:
                rel, labels = parts[0], [int(parts[1])]
            else:
                raise ValueError
        except ValueError:
            problems.append(f'{where}: expected {expected}, got {line!r}')
            continue
        entries.append((where, rel, labels))
    return entries, problems


def check_list(path: str, kind: str = 'video', prefix: str | None = None, num_classes: int | None = None,
               delimiter: str = ' ', multi_class: bool = False, check_files: bool = True) -> list[str]:
    """Every problem of one annotation list, as ``'file:line: what'`` strings (empty when it is fine).

    Args:
        path: The list file.
        kind: ``'video'`` (mmaction2 ``VideoDataset``), ``'rawframe'`` or ``'image'`` (``ImageListDataset``).
        prefix: Folder the listed paths are relative to (``data_prefix``); None: as listed.
        num_classes: Labels must lie in ``0..num_classes-1``; None: only non-negative.
        delimiter: Field separator of ``VideoDataset`` lists.
        multi_class: ``VideoDataset(multi_class=True)`` lists: any number of labels after the path.
        check_files: Also check that every listed file exists.
    """
    if not osp.isfile(path):
        return [f'{path}: annotation list does not exist']
    entries, problems = _parse(path, kind, delimiter, multi_class)
    if not entries and not problems:
        return [f'{path}: annotation list is empty (no samples)']
    hi = f'0..{num_classes - 1} (the model has num_classes={num_classes})' if num_classes else '0 or more'
    for where, rel, labels in entries:
        bad = [lb for lb in labels if lb < 0 or (num_classes is not None and lb >= num_classes)]
        if bad:
            problems.append(f'{where}: label {bad[0]} is outside {hi}')
        if check_files:
            full = osp.join(prefix, rel) if prefix else rel
            if not osp.exists(full):
                problems.append(f'{where}: {rel} not found (looked for {full})')
    return sorted(problems, key=lambda p: _line_of(p, path))


def _line_of(problem: str, path: str) -> int:
    rest = problem[len(path) + 1:] if problem.startswith(path + ':') else ''
    number = rest.split(':', 1)[0]
    return int(number) if number.isdigit() else 0


def _leaf_cfgs(ds: Any) -> Iterator[dict]:
    """Dataset configs under wrappers (``RepeatDataset``: ``dataset``; ``ConcatDataset``: ``datasets``)."""
    if not isinstance(ds, dict):
        return
    if 'datasets' in ds and 'ann_file' not in ds:
        for d in ds['datasets']:
            yield from _leaf_cfgs(d)
    elif 'dataset' in ds and 'ann_file' not in ds:
        yield from _leaf_cfgs(ds['dataset'])
    else:
        yield ds


def _build_lazy(ds_cfg: dict, scope: str) -> Any:
    from mmaction.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        return DATASETS.build(dict(ds_cfg, lazy_init=True))


def _dataset_problems(ds: Any, num_classes: int | None) -> list[str]:
    """Problems of one built (lazily initialised) data set."""
    from mmaction.datasets import RawframeDataset, VideoDataset

    from ..datasets.image_list import ImageListDataset
    if isinstance(ds, VideoDataset):
        return check_list(ds.ann_file, 'video', ds.data_prefix.get('video'), num_classes, ds.delimiter,
                          ds.multi_class)
    if isinstance(ds, RawframeDataset):
        return check_list(ds.ann_file, 'rawframe', ds.data_prefix.get('img'), num_classes, ds.delimiter)
    if isinstance(ds, ImageListDataset):
        return check_list(ds.ann_file, 'image', ds.data_prefix.get('img_path') or None, num_classes)
    name = type(ds).__name__
    try:
        ds.full_init()
    except Exception as e:
        return [f'{name}: cannot read its annotations: {type(e).__name__}: {e}']
    problems = []
    if len(ds) == 0:
        problems.append(f'{name} (data_root {getattr(ds, "data_root", "")!r}) holds no samples')
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        label = info.get('gt_label', info.get('label'))
        where = f'{name} sample {i}'
        if isinstance(label, int) and (label < 0 or (num_classes is not None and label >= num_classes)):
            problems.append(f'{where}: label {label} is outside 0..{(num_classes or 0) - 1}')
        path = info.get('img_path') or info.get('filename')
        if isinstance(path, str) and not osp.exists(path):
            problems.append(f'{where}: {path} not found')
    return problems


def validate_data(cfg: Config, splits: Sequence[str], num_classes: int | None = None) -> None:
    """Check every annotation list of ``<split>_dataloader`` for ``splits`` before any work.

    Lists must exist, be non-empty, parse line by line, hold labels in ``0..num_classes-1`` (from the model
    config unless given) and name files that exist. Generated data sets are generated first (they write their
    lists on first use).

    Raises:
        DataValidationError: Every problem found, with file and line (at most ``MAX_LISTED`` per list).
    """
    if num_classes is None:
        num_classes = model_num_classes(cfg.get('model'))
    scope = cfg.get('default_scope') or 'mmaction'
    report, total = [], 0
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        for ds_cfg in _leaf_cfgs(loader['dataset']):
            problems = _dataset_problems(_build_lazy(ds_cfg, scope), num_classes)
            total += len(problems)
            report += [f'  [{split}] {p}' for p in problems[:MAX_LISTED]]
            if len(problems) > MAX_LISTED:
                report.append(f'  [{split}] ... and {len(problems) - MAX_LISTED} more in this list')
    if report:
        raise DataValidationError(
            f'the data does not fit the config ({total} problem{"s" if total != 1 else ""}; nothing was run):\n'
            + '\n'.join(report) + '\nFix: correct or remove those lines, point the config (data_root, ann_file, '
            "data_prefix) at the right files, or set the model's num_classes to the data set's class count.")


def _is_decoder(transform: Any) -> bool:
    name = type(transform).__name__
    return name.endswith(('Init', 'Decode')) or name.startswith('Load')


#: Which library a decoding transform uses, for the error message.
_DECODERS = {'DecordInit': 'decord', 'DecordDecode': 'decord', 'PyAVInit': 'PyAV', 'PyAVDecode': 'PyAV',
             'PyAVDecodeMotionVector': 'PyAV', 'OpenCVInit': 'OpenCV', 'OpenCVDecode': 'OpenCV',
             'PIMSInit': 'PIMS', 'PIMSDecode': 'PIMS', 'RawFrameDecode': 'mmcv', 'LoadImageFromFile': 'mmcv'}


class _GuardedPipeline:
    """A dataset pipeline (MMEngine ``Compose``) run transform by transform, so that a failure names its sample.

    The loop is ``Compose.__call__``'s own (three lines), with the error attributed to the transform.
    """

    def __init__(self, pipeline: Any, skip: bool, source: str) -> None:
        self.pipeline, self.skip, self.source = pipeline, skip, source

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def __call__(self, data: dict) -> dict | None:
        for t in self.pipeline.transforms:
            sample = data.get('filename') or data.get('img_path') or data.get('frame_dir') or '<unknown sample>'
            try:
                data = t(data)
            except Exception as e:
                name = type(t).__name__
                decoder = f' (decoder {_DECODERS.get(name, name)}, transform {name})' if _is_decoder(t) else \
                    f' (transform {name})'
                reason = f'{type(e).__name__}: {str(e).strip() or repr(e)}'
                if self.skip and _is_decoder(t):
                    print_log(f'--skip-bad-samples: skipping {sample}{decoder}: {reason}', logger='current',
                              level=30)
                    return None
                hint = ('re-encode or replace the file, remove its line from ' + self.source +
                        ', or pass --skip-bad-samples to log and skip such samples') if _is_decoder(t) else \
                    'check this transform\'s settings in the config'
                raise BadSampleError(f'cannot {"decode" if _is_decoder(t) else "process"} {sample}{decoder}: '
                                     f'{reason}. Fix: {hint}.') from e
            if data is None:
                return None
        return data


def _leaf_datasets(ds: Any) -> Iterator[Any]:
    if hasattr(ds, 'datasets'):
        for d in ds.datasets:
            yield from _leaf_datasets(d)
    elif hasattr(ds, 'dataset') and not hasattr(ds, 'pipeline'):
        yield from _leaf_datasets(ds.dataset)
    else:
        yield ds


def guard_dataset(dataset: Any, skip: bool = False) -> None:
    """Wrap the pipeline of ``dataset`` (and of the data sets inside wrappers) in a guard, once."""
    for ds in _leaf_datasets(dataset):
        pipeline = getattr(ds, 'pipeline', None)
        if pipeline is not None and hasattr(pipeline, 'transforms') and not isinstance(pipeline, _GuardedPipeline):
            ds.pipeline = _GuardedPipeline(pipeline, skip, getattr(ds, 'ann_file', '') or type(ds).__name__)


def probe_dataset(ds: Any) -> tuple[list[int], list[str]]:
    """Run each sample's transforms up to its first decoder: ``(indices that pass, messages of those that fail)``."""
    ds.full_init()
    good, bad = [], []
    transforms = list(getattr(ds.pipeline, 'transforms', []))
    first = next((i for i, t in enumerate(transforms) if _is_decoder(t)), None)
    if first is None:
        return list(range(len(ds))), []
    for i in range(len(ds)):
        data = ds.get_data_info(i)
        try:
            for t in transforms[:first + 1]:
                data = t(data)
            good.append(i)
        except Exception as e:
            info = ds.get_data_info(i)
            sample = info.get('filename') or info.get('img_path') or info.get('frame_dir')
            name = type(transforms[first]).__name__
            bad.append(f'{sample} (decoder {_DECODERS.get(name, name)}): {type(e).__name__}: {e}')
    return good, bad


def skip_bad_eval_samples(cfg: Config, splits: Sequence[str]) -> list[str]:
    """For evaluation splits under ``--skip-bad-samples``: drop the samples that cannot be opened, through the
    data set's own ``indices`` argument (MMEngine ``BaseDataset``), and return what was skipped.

    (A test set cannot skip a sample at load time as training does: MMEngine's test mode refuses a ``None``.)
    """
    scope = cfg.get('default_scope') or 'mmaction'
    skipped = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        for ds_cfg in _leaf_cfgs(loader['dataset']):
            good, bad = probe_dataset(_build_lazy(ds_cfg, scope))
            if bad:
                if ds_cfg.get('indices') is not None:
                    raise ValueError(f'--skip-bad-samples cannot combine with {split}_dataloader.dataset.indices; '
                                     f'undecodable: {bad[:5]}')
                ds_cfg['indices'] = good
                skipped += [f'[{split}] {b}' for b in bad]
    for line in skipped:
        print_log(f'--skip-bad-samples: skipping {line}', logger='current', level=30)
    return skipped


@HOOKS.register_module()
class SampleGuardHook(Hook):
    """Name the sample, the decoder and the reason when a sample fails to load; with ``skip_bad_samples`` log it
    and let MMEngine draw another training sample instead (its ``BaseDataset`` re-fetches on ``None``).

    The tools add it; configs need not name it.

    Args:
        skip_bad_samples: Log and skip undecodable training samples instead of stopping.
    """

    priority = 'VERY_HIGH'

    def __init__(self, skip_bad_samples: bool = False) -> None:
        self.skip = skip_bad_samples

    def before_train(self, runner) -> None:
        guard_dataset(runner.train_loop.dataloader.dataset, self.skip)

    def before_val(self, runner) -> None:
        guard_dataset(runner.val_loop.dataloader.dataset, False)

    def before_test(self, runner) -> None:
        guard_dataset(runner.test_loop.dataloader.dataset, False)
