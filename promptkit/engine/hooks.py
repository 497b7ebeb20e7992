"""MMEngine hooks: prompt-only checkpoints that still resume, checked against the frozen base."""
from __future__ import annotations

import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from ..artifacts import TENSORS, frozen_fingerprint, save_prompts, trainable_table, trained_state_dict
from ..registry import HOOKS


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PromptCheckpointHook(Hook):
    """Save only what training changes, refuse to load onto another base, export the prompts at the end.

    - ``before_save_checkpoint``: the checkpoint's ``state_dict`` keeps the trainable parameters (and buffers
      outside frozen hosts); ``meta['promptkit']`` records the frozen base's fingerprint and the trained keys.
      Optimizer and scheduler states are kept, so ``--resume`` works.
    - ``after_load_checkpoint``: a promptkit checkpoint must match the frozen base the config built (from its
      ``pretrained=`` path) and must hold every trainable tensor; otherwise one error says which and how to fix.
    - ``before_train``: the table of trainable parameters of the whole model (head included) goes to
      ``<log dir>/trainable_parameters.txt``, its summary line to the log.
    - ``after_train``: writes ``prompts.safetensors`` and ``prompt_config.json`` into the work dir.

    The fingerprints, trained state and prompt files themselves are :mod:`promptkit.artifacts`'.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._fingerprint: str | None = None

    def _base(self, runner) -> str:
        if self._fingerprint is None:  # the frozen base never changes during a run
            self._fingerprint = frozen_fingerprint(_unwrap(runner.model))
        return self._fingerprint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = _unwrap(runner.model)
        state = trained_state_dict(model)
        checkpoint['state_dict'] = {k: v for k, v in checkpoint['state_dict'].items() if k in state}
        checkpoint.setdefault('meta', {})['promptkit'] = dict(base_fingerprint=self._base(runner),
                                                              trained_keys=sorted(state))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {}).get('promptkit')
        if meta is None:
            return  # a full checkpoint (mmaction2 or plain MMEngine): nothing to check
        found = self._base(runner)
        if meta['base_fingerprint'] != found:
            raise RuntimeError(
                f'this checkpoint was trained on another frozen base (fingerprint {meta["base_fingerprint"]}, '
                f'the model built from the config has {found}). Point model.backbone.pretrained at the weights '
                'the prompts were trained from, and keep the backbone settings of that run.')
        from .. import checkpoint as ckpt
        model = _unwrap(runner.model)
        state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in checkpoint['state_dict'].items()}
        # Keys, shapes, dtypes and finite values, before MMEngine copies anything (it would only warn on a shape).
        ckpt.check_tensors(ckpt.last_loaded or 'the checkpoint', state, trained_state_dict(model),
                           'the model this config builds')

    def before_train(self, runner) -> None:
        table = trainable_table(_unwrap(runner.model))
        path = osp.join(runner.log_dir, 'trainable_parameters.txt')
        with open(path, 'w') as f:
            f.write(table + '\n')
        runner.logger.info(f'promptkit: {table.splitlines()[-1]} (table: {path})')

    def after_train(self, runner) -> None:
        save_prompts(_unwrap(runner.model), runner.work_dir, base_fingerprint=self._base(runner),
                     config=runner.cfg.get('model'))
        runner.logger.info(f'promptkit: prompts written to {osp.join(runner.work_dir, TENSORS)}')


__all__ = ['PromptCheckpointHook']
