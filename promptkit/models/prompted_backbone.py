"""``PromptedBackbone``: an mmaction2 backbone, frozen, with a prompt strategy attached."""
from __future__ import annotations

import contextlib
import os.path as osp
from typing import Iterator, Sequence

from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..hosts import Host, find_host
from ..registry import MODELS, PROMPTS


def build_prompt(cfg: dict) -> nn.Module:
    """Build a strategy from ``PROMPTS``; an unknown type fails listing the registered names."""
    cfg = dict(cfg)
    kind = cfg.get('type')
    if kind is None:
        raise KeyError(f"prompt config {cfg} has no 'type'; registered prompt types: {sorted(PROMPTS.module_dict)}")
    if isinstance(kind, str) and PROMPTS.get(kind) is None:
        raise KeyError(f'unknown prompt type {kind!r}; registered prompt types: {sorted(PROMPTS.module_dict)}. '
                       'A type of your own needs @PROMPTS.register_module() (from promptkit.registry) in a module '
                       "listed in the config's custom_imports")
    return PROMPTS.build(cfg)


def build_host_model(cfg: dict | nn.Module) -> nn.Module:
    """Build the host backbone with mmaction2's registry (scoped types such as ``'mmpretrain.X'`` work too)."""
    if isinstance(cfg, nn.Module):
        return cfg
    from mmaction.registry import MODELS as MMACTION_MODELS
    return MMACTION_MODELS.build(cfg)


def trainable_table(model: nn.Module) -> str:
    """One row per trainable parameter (name, shape, count), then the PEFT-style summary line."""
    rows, total, trainable = [], 0, 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            rows.append((name, tuple(p.shape), p.numel()))
    width = max([len(r[0]) for r in rows] + [9])
    lines = [f'{"parameter":<{width}}  {"shape":<20} {"count":>10}']
    lines += [f'{n:<{width}}  {str(s):<20} {c:>10,}' for n, s, c in rows]
    pct = 100 * trainable / max(total, 1)
    lines.append(f'trainable params: {trainable:,} || all params: {total:,} || trainable%: {pct:.4f}')
    return '\n'.join(lines)


def attach_prompts(model: nn.Module, prompt: dict | None, train_roles: Sequence[str] = (),
                   full_finetune: bool = False) -> tuple[Host, nn.Module | None, tuple[str, ...]]:
    """Find the host of ``model``, build and attach the strategy, and freeze: what every wrapper does.

    Returns the host, the strategy (None without ``prompt``; the caller registers it as a submodule) and the
    host parameter roles left trainable.
    """
    host = find_host(model)
    strategy = build_prompt(prompt) if prompt is not None else None
    if strategy is not None:
        host.check(strategy)
        strategy.setup(host.infos())
    host.attach(strategy)
    model.requires_grad_(full_finetune)
    roles = tuple(sorted(set(train_roles) | set(getattr(strategy, 'host_roles', ()))))
    for role in roles:
        host.role_module(role).requires_grad_(True)
    return host, strategy, roles


class PromptedWrapperMixin:
    """What every promptkit wrapper shares, given ``self.backbone`` (the host), ``self.host``, ``self.prompt`` and
    ``self.full_finetune``: the trainable-parameter table and its guard, and ``host_eval``."""

    def _report(self, expected: int | None) -> None:
        table = trainable_table(self)
        print_log(f'promptkit: trainable parameters of the {type(self).__name__} ({self.host.name})\n{table}',
                  logger='current')
        # Inside a Runner the current logger writes to <work_dir>/<timestamp>/; keep the table beside its log.
        log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
        if log_file:
            with open(osp.join(osp.dirname(log_file), 'trainable_parameters.txt'), 'w') as f:
                f.write(table + '\n')
        count = self.num_trainable()
        if expected is not None and count != expected:
            raise ValueError(f'{type(self).__name__} has {count:,} trainable parameters but expected_trainable='
                             f'{expected:,}; see the table above')

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def print_trainable_parameters(self) -> None:
        print(trainable_table(self).splitlines()[-1])

    def train(self, mode: bool = True):
        """Train mode for the trained parts; the frozen host follows, unless the strategy asks for ``host_eval``."""
        super().train(mode)
        if mode and not self.full_finetune and getattr(self.prompt, 'host_eval', False):
            self.backbone.eval()
        return self


@MODELS.register_module()
class PromptedBackbone(PromptedWrapperMixin, BaseModule):
    """Wraps an mmaction2 backbone: loads its weights, freezes it, attaches a prompt strategy.

    Every attention of the host runs through promptkit's SDPA kernel, with or without prompts, so prompt tuning,
    linear probing and full fine-tuning share one forward. Freezing happens here, before any DDP wrapping.

    Args:
        backbone: Config of the host backbone (built with mmaction2's registry), or the module itself.
        prompt: Config of the prompt strategy (``PROMPTS``); None for linear probing / full fine-tuning.
        pretrained: Path of VideoMAE (pre-training or fine-tuned) or mmaction2 weights for the backbone, loaded
            at build time and checked key by key (a ``promptkit.FrameTower`` takes its own ``pretrained=``).
            Defaults to None (the host's own random init).
        train_roles: Host parameter roles to train besides the strategy's own choice, e.g. ``('head_norm',)``
            for the official linear probe. Defaults to ().
        full_finetune: Train every backbone parameter (the full fine-tuning baseline). Defaults to False.
        expected_trainable: If given, the number of trainable parameters this wrapper must end up with; a
            mismatch fails the build. Defaults to None.
        init_cfg: MMEngine init config. Defaults to None.

    Examples:
        >>> model = dict(type='Recognizer3D',
        ...              backbone=dict(type='promptkit.PromptedBackbone',
        ...                            backbone=dict(type='VisionTransformer', embed_dims=768, depth=12),
        ...                            prompt=dict(type='AttentionPrompt', num_tokens=2),
        ...                            pretrained='checkpoints/videomae_vit-b_ssv2_pretrain.pth'),
        ...              cls_head=dict(type='TimeSformerHead', num_classes=174, in_channels=768))
    """

    def __init__(self, backbone: dict | nn.Module, prompt: dict | None = None, pretrained: str | None = None,
                 train_roles: Sequence[str] = (), full_finetune: bool = False,
                 expected_trainable: int | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = build_host_model(backbone)
        self.pretrained = pretrained
        if pretrained:
            from .frame_tower import FrameTower
            if isinstance(self.backbone, FrameTower):
                raise ValueError('PromptedBackbone: pretrained= loads VideoMAE weights; a FrameTower loads its own '
                                 'image-tower weights: move pretrained= into backbone=dict(type='
                                 "'promptkit.FrameTower', ..., pretrained=...)")
            from ..checkpoint import load_videomae_backbone
            load_videomae_backbone(self.backbone, pretrained, logger='current')
        self.full_finetune = full_finetune
        self.host, self.prompt, self.train_roles = attach_prompts(self.backbone, prompt, train_roles, full_finetune)
        self._report(expected_trainable)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def init_weights(self) -> None:
        """Initialise the host only when no weights were loaded; strategies initialise themselves when built."""
        if self.pretrained is None and hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        self._is_init = True

    @contextlib.contextmanager
    def prompts_disabled(self) -> Iterator[None]:
        """Run the host unprompted (still through the SDPA sites) inside the block."""
        saved = [site.active for site in self.host.sites]
        for site in self.host.sites:
            site.active = set()
        try:
            yield
        finally:
            for site, active in zip(self.host.sites, saved):
                site.active = active

    def detach_prompts(self) -> nn.Module:
        """Remove every site and return the host module with its own forwards."""
        self.host.detach()
        return self.backbone
