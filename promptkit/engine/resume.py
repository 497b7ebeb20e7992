"""Exact resume: checkpoints carry the random states and the sampler's position, so that a run resumed from a
checkpoint ends with the weights an uninterrupted run ends with (on CPU; bit for bit).

MMEngine restores weights, optimizer, schedulers and epoch / iteration, and seeds the sampler per epoch
(``DefaultSampler`` with ``seed + epoch``); it does not restore the torch, numpy and python random states that
prompt dropout and data augmentation draw from, and it restarts an epoch-based run at the beginning of the epoch.
``ExactResumeHook`` adds what is missing through MMEngine's hook points:

- ``before_save_checkpoint``: stores the random states in ``meta['promptkit_resume']``;
- ``after_load_checkpoint``: remembers them and the position inside the epoch (``iter - epoch * len(loader)``);
- ``before_train_epoch`` (first epoch after a resume): restores the states at an epoch boundary; inside an epoch,
  ``ResumableSampler`` skips the samples already seen and restores them just before the first sample is loaded;
- ``before_val`` / ``after_val``: validation leaves the training random states as they were, so that a resumed
  run (which does not repeat the validation before it) draws the same numbers.

Data-loader workers (``num_workers > 0``) are seeded by MMEngine per worker; with ``persistent_workers`` their
random states carry across epochs and cannot be restored, so exactness then holds only for ``num_workers=0`` or
non-persistent workers at epoch boundaries.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.registry import DATA_SAMPLERS

from ..registry import HOOKS

__all__ = ['ExactResumeHook', 'ResumableSampler', 'rng_state', 'set_rng_state']

KEY = 'promptkit_resume'


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python random states, as tensors and ints (weights-only loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = dict(torch=torch.get_rng_state(),
                 numpy=dict(key=torch.from_numpy(np_state[1].astype(np.int64)), pos=int(np_state[2]),
                            has_gauss=int(np_state[3]), cached_gaussian=float(np_state[4])),
                 python=dict(version=int(py_state[0]), state=torch.tensor(py_state[1], dtype=torch.int64),
                             gauss=py_state[2]))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state(('MT19937', n['key'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['cached_gaussian']))
    p = state['python']
    random.setstate((p['version'], tuple(int(x) for x in p['state'].tolist()), p['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """MMEngine's ``DefaultSampler`` (same order, same arguments) that can start its next epoch part-way through.

    The tools use it in place of ``DefaultSampler`` for training.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip, self._on_first = 0, None

    def resume_at(self, samples: int, on_first: Callable[[], None] | None = None) -> None:
        """Leave out the first ``samples`` indices of the next epoch; call ``on_first`` before the first index is
        handed out (that is, after the data loader's iterator was made, before any sample is loaded)."""
        self._skip, self._on_first = int(samples), on_first

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self._skip:]
        on_first, self._skip, self._on_first = self._on_first, 0, None
        return self._yield(indices, on_first)

    @staticmethod
    def _yield(indices: list[int], on_first: Callable[[], None] | None) -> Iterator[int]:
        if on_first is not None:
            on_first()
        yield from indices

    def __len__(self) -> int:
        return super().__len__() - self._skip


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save and restore the random states and the sampler position (see the module docstring). The tools add it."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._pending: dict | None = None
        self._train_state: dict | None = None  # the training states while a validation runs

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[KEY] = dict(rng=self._train_state or rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        if KEY in meta and 'epoch' in meta and 'iter' in meta:
            self._pending = dict(meta[KEY], epoch=int(meta['epoch']), iter=int(meta['iter']))

    def before_train_epoch(self, runner) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        from mmengine.runner import EpochBasedTrainLoop
        loader = runner.train_loop.dataloader
        position = pending['iter'] - pending['epoch'] * len(loader) \
            if isinstance(runner.train_loop, EpochBasedTrainLoop) else 0
        if position <= 0:
            set_rng_state(pending['rng'])  # before the epoch's iterator is made, as in the uninterrupted run
            return
        sampler = loader.sampler
        if not isinstance(sampler, ResumableSampler):
            runner.logger.warning(f'resuming inside an epoch (after {position} iterations) with a '
                                  f'{type(sampler).__name__}: the epoch restarts from its first batch; use '
                                  'ResumableSampler (the tools do) for an exact resume')
            set_rng_state(pending['rng'])
            return
        sampler.resume_at(position * loader.batch_size, lambda: set_rng_state(pending['rng']))
        runner.logger.info(f'promptkit: resuming inside epoch {pending["epoch"] + 1} after {position} iterations')

    def before_val(self, runner) -> None:
        from mmengine.runner import BaseLoop
        if isinstance(runner._train_loop, BaseLoop):  # validation inside training (the property would build one)
            self._train_state = rng_state()

    def after_val(self, runner) -> None:
        if self._train_state is not None:
            set_rng_state(self._train_state)
            self._train_state = None
