"""``PromptedBackbone``: an mmaction2 backbone, frozen, with a prompt strategy attached."""
from __future__ import annotations

import contextlib
import difflib
from typing import Iterator, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..artifacts import trainable_table
from ..hosts import Host, find_host
from ..registry import MODELS, PROMPTS
from ..weights import load_videomae_backbone


def build_prompt(cfg: dict) -> nn.Module:
    """Build a strategy from ``PROMPTS``; an unknown type fails naming the closest registered names. The config
    is kept on the strategy (``strategy.config``) so artifacts can record how to rebuild it."""
    cfg = dict(cfg)
    kind = cfg.get('type')
    names = sorted(PROMPTS.module_dict)
    if kind is None:
        raise KeyError(f"prompt config {cfg} has no 'type'; registered prompt types: {names}")
    if isinstance(kind, str) and PROMPTS.get(kind) is None:
        close = difflib.get_close_matches(kind.split('.')[-1], names, n=3, cutoff=0.5)
        hint = f'did you mean {" or ".join(map(repr, close))}? ' if close else ''
        raise KeyError(f'unknown prompt type {kind!r}; {hint}registered prompt types: {names}. A type of your own '
                       'needs @PROMPTS.register_module() (from promptkit.registry) in a module listed in the '
                       "config's custom_imports")
    strategy = PROMPTS.build(cfg)
    strategy.config = {k: v for k, v in cfg.items()}
    return strategy


def build_host_model(cfg: dict | nn.Module) -> nn.Module:
    """Build the host backbone with mmaction2's registry (scoped types such as ``'mmpretrain.X'`` work too)."""
    if isinstance(cfg, nn.Module):
        return cfg
    from mmaction.registry import MODELS as MMACTION_MODELS
    return MMACTION_MODELS.build(cfg)


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
        """Log the summary line (the checkpoint hook writes the whole model's table, head included, at the start
        of training) and check ``expected_trainable``."""
        print_log(f'promptkit: {type(self).__name__} on {self.host.name}: '
                  f'{trainable_table(self).splitlines()[-1]}', logger='current')
        count = self.num_trainable()
        if expected is not None and count != expected:
            raise ValueError(f'{type(self).__name__} has {count:,} trainable parameters but expected_trainable='
                             f'{expected:,}; promptkit.artifacts.trainable_table(model) lists them')

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def print_trainable_parameters(self) -> None:
        print(trainable_table(self).splitlines()[-1])

    @contextlib.contextmanager
    def prompts_disabled(self) -> Iterator[None]:
        """Run the host unprompted (still through the SDPA sites) inside the block."""
        with self.host.disabled():
            yield

    def detach_prompts(self) -> nn.Module:
        """Remove every site and return the host module with its own forwards."""
        self.host.detach()
        return self.backbone

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

    def dummy_inputs(self, batch_size: int = 1) -> Tensor:
        """Random normalised clips (B, C, T, H, W) of the shape the host was built for (for cost measurement).

        Read from mmaction2's VideoMAE ``VisionTransformer``: the patch-embedding kernel (tubelet, p, p), its
        ``grid_size`` and the length of its position table.
        """
        host = self.backbone
        try:
            proj, (gh, gw), tokens = host.patch_embed.projection, host.grid_size, host.pos_embed.shape[1]
        except AttributeError as e:
            raise NotImplementedError(f'PromptedBackbone.dummy_inputs reads the input shape of a VideoMAE '
                                      f'VisionTransformer; {type(host).__name__} lacks {e.name!r}') from e
        t, ph, pw = proj.kernel_size
        frames = tokens // (gh * gw) * t  # pos_embed: (1, T/t · gh · gw, C)
        return torch.randn(batch_size, proj.in_channels, frames, gh * ph, gw * pw, device=proj.weight.device)
