"""A PEFT-style Python API: wrap an already-built model, train its prompts in any loop, save, reload, unload.

``get_prompt_model(model, prompt=..., train=('head',))`` finds the part of ``model`` a registered host understands
(the model itself, or a known sub-module such as open_clip's ``visual`` or an mmaction2 recognizer's
``backbone``), attaches the prompt strategy with :func:`promptkit.models.attach_prompts` (the sequence every config
wrapper uses), freezes the rest and returns a :class:`PromptModel`. Saving and loading go through
:mod:`promptkit.artifacts` (``prompts.safetensors`` + ``prompt_config.json``, bound to the frozen base by its
fingerprint), so a file written here loads in ``tools/test.py`` style code and the other way round.

A new model family plugs in with one :class:`Family` entry in :data:`FAMILIES`: which class it is, where its host
sits inside it and what its ``'head'`` is.
"""
from __future__ import annotations

import contextlib
import json
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from .artifacts import trainable_table
from .hosts import find_host
from .models.prompted_backbone import attach_prompts

__all__ = ['Family', 'FAMILIES', 'PromptModel', 'get_prompt_model', 'locate_host']

Head = Callable[[nn.Module], 'nn.Module | nn.Parameter | None']


@dataclass(frozen=True)
class Family:
    """Where the host and the head of one model family sit.

    Args:
        target: Dotted class path (``'open_clip.model.CLIP'``); matched with ``isinstance`` and only looked up
            when its module is already imported, so no optional library is imported here.
        host: Path of the host module inside the model (``'visual'``); ``''`` when the model is the host.
        head: Path of the module or parameter ``train=('head',)`` unfreezes, a callable returning it, or None
            when the family has no head.
    """

    target: str
    host: str = ''
    head: str | Head | None = None

    def cls(self) -> type | None:
        module, _, name = self.target.rpartition('.')
        return getattr(sys.modules.get(module), name, None)


def _timm_head(model: nn.Module) -> nn.Module:
    return model.get_classifier()


#: Known model families, most specific first. Models outside this list still work when exactly one of their
#: sub-modules is a host (found by search); ``host=`` picks one explicitly.
FAMILIES: list[Family] = [
    Family('timm.models.vision_transformer.VisionTransformer', host='', head=_timm_head),
    Family('open_clip.transformer.VisionTransformer', host='', head='proj'),
    Family('open_clip.model.CLIP', host='visual', head='visual.proj'),
    Family('open_clip.model.CustomTextCLIP', host='visual', head='visual.proj'),
    Family('mmaction.models.recognizers.base.BaseRecognizer', host='backbone', head='cls_head'),
    Family('mmaction.models.backbones.vit_mae.VisionTransformer', host='', head=None),
]


def _family(model: nn.Module) -> Family | None:
    for family in FAMILIES:
        cls = family.cls()
        if cls is not None and isinstance(model, cls):
            return family
    return None


def _is_host(module: nn.Module) -> bool:
    try:
        find_host(module)
    except TypeError:  # find_host's "no host understands this model"
        return False
    return True


def locate_host(model: nn.Module, host: str | None = None) -> str:
    """The path of the host module inside ``model`` (``''`` for the model itself).

    Args:
        model: Any ``nn.Module``.
        host: An explicit path; checked, then returned. Defaults to None (the family's, else a search).

    Raises:
        TypeError: No host understands ``model`` or its sub-modules, or several sub-modules qualify.
    """
    if host is not None:
        module = model.get_submodule(host)
        if not _is_host(module):
            raise TypeError(f'host={host!r} is a {type(module).__name__}, which no promptkit host understands')
        return host
    family = _family(model)
    if family is not None:
        return family.host
    if _is_host(model):
        return ''
    found = [name for name, m in model.named_modules() if name and _is_host(m)]
    top = [n for n in found if not any(n.startswith(o + '.') for o in found if o != n)]
    if len(top) == 1:
        return top[0]
    if top:
        raise TypeError(f'{type(model).__name__} holds several models promptkit can prompt: {top}; pick one with '
                        'host=<path>')
    try:
        find_host(model)  # raises, naming what the registered hosts understand
    except TypeError as e:
        raise TypeError(f'{e}. None of its sub-modules is such a model either') from None
    raise AssertionError('unreachable: _is_host(model) was False')


def _resolve_head(model: nn.Module) -> list[nn.Parameter]:
    family = _family(model)
    if family is None or family.head is None:
        name = type(model).__name__
        raise KeyError(f"train=('head',): promptkit does not know the head of a {name}; name the module to train "
                       "instead (train=('<module path>',))")
    head = family.head(model) if callable(family.head) else _get(model, family.head)
    params = [head] if isinstance(head, nn.Parameter) else list(head.parameters()) if head is not None else []
    if not params:
        raise KeyError(f"train=('head',): the head of this {type(model).__name__} has no parameters (built with "
                       'num_classes=0?)')
    return params


def _get(model: nn.Module, path: str) -> nn.Module | nn.Parameter:
    owner, _, last = path.rpartition('.')
    module = model.get_submodule(owner) if owner else model
    return getattr(module, last)


class PromptModel(nn.Module):
    """A model with prompts attached: its forward is the model's; only the prompts (and what ``train`` named)
    are trainable. Build it with :func:`get_prompt_model` or :meth:`from_pretrained`.

    Attributes:
        base_model: The wrapped model (its modules keep their names; the host's attention forwards are taken over).
        prompt: The prompt strategy (``prompt.*`` in the state dict), None without ``prompt``.
        host: The promptkit host of ``base_model.<host_path>``.
    """

    def __init__(self, model: nn.Module, prompt: dict | None, train: Sequence[str] = (),
                 host: str | None = None) -> None:
        super().__init__()
        if any(isinstance(m, PromptModel) for m in model.modules()):
            raise ValueError('this model already has prompts attached (it holds a PromptModel); call unload() first')
        self.host_path = locate_host(model, host)
        self.prompt_config = dict(prompt) if prompt is not None else None
        self.train_spec = tuple(train)
        self._requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        host_module = model.get_submodule(self.host_path) if self.host_path else model
        roles_of = find_host(host_module).roles
        roles = [t for t in self.train_spec if t in roles_of]
        extra = [t for t in self.train_spec if t not in roles_of]
        self.base_model = model
        self.full_finetune = False
        model.requires_grad_(False)  # attach_prompts freezes the host; the rest of the model (heads, text tower) too
        self.host, self.prompt, self.train_roles = attach_prompts(host_module, self.prompt_config, roles)
        for name in extra:
            self._unfreeze(model, name, sorted(roles_of))
        # What unload() puts back: the values of the base parameters this model trains (heads, norms).
        self._original = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @staticmethod
    def _unfreeze(model: nn.Module, name: str, roles: list[str]) -> None:
        if name == 'head':
            params = _resolve_head(model)
        else:
            try:
                target = _get(model, name)
            except AttributeError:
                raise KeyError(f'train: {name!r} is neither "head", a role of this host ({roles}) nor a module or '
                               f'parameter of the {type(model).__name__}') from None
            params = [target] if isinstance(target, nn.Parameter) else list(target.parameters())
        for p in params:
            p.requires_grad_(True)

    def __getattr__(self, name: str):
        """Attributes the wrapper lacks come from the base model (``pm.encode_image``, ``pm.cls_head``)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == 'base_model':
                raise
            return getattr(self.base_model, name)

    def forward(self, *args, **kwargs):
        return self.base_model(*args, **kwargs)

    def train(self, mode: bool = True) -> 'PromptModel':
        """Train mode for the trained parts; the frozen host stays in eval mode when the strategy asks for it."""
        super().train(mode)
        if mode and getattr(self.prompt, 'host_eval', False):
            self.host.model.eval()
        return self

    @property
    def backbone(self) -> nn.Module:
        """The host module inside ``base_model`` (the attribute every promptkit wrapper has)."""
        return self.host.model

    def artifact_info(self) -> dict:
        """What :meth:`from_pretrained` needs beyond the strategy config, recorded in ``prompt_config.json``."""
        return dict(host_path=self.host_path, train=list(self.train_spec))

    def get_base_model(self) -> nn.Module:
        """The wrapped model, prompts still attached."""
        return self.base_model

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable, all) parameter counts, prompts included."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def print_trainable_parameters(self, table: bool = False) -> None:
        """Print PEFT's summary line; with ``table``, one row per trainable tensor first."""
        text = trainable_table(self)
        print(text if table else text.splitlines()[-1])

    @contextlib.contextmanager
    def disable_prompts(self) -> Iterator[None]:
        """Run the model without its prompts inside the block (the host still runs through promptkit's sites)."""
        with self.host.disabled():
            yield

    def save_pretrained(self, save_directory: str) -> str:
        """Write ``prompts.safetensors`` and ``prompt_config.json`` (the trained tensors only); returns the file.

        A file that already exists is never overwritten: choose a new folder.
        """
        from .artifacts import CONFIG, TENSORS, save_prompts
        for name in (TENSORS, CONFIG):
            if osp.exists(osp.join(save_directory, name)):
                raise FileExistsError(f'{osp.join(save_directory, name)} exists; save_pretrained never overwrites '
                                      'a file: pass a new folder or remove it yourself')
        return save_prompts(self, save_directory)

    @classmethod
    def from_pretrained(cls, model: nn.Module, path: str) -> 'PromptModel':
        """Rebuild the prompts of a :meth:`save_pretrained` folder on ``model`` and load the trained tensors.

        Args:
            model: The same base model the prompts were trained on (same weights; checked by fingerprint).
            path: The folder (or its ``prompts.safetensors``).

        Raises:
            FileNotFoundError: No prompt file there.
            ValueError: The folder was not written by :meth:`save_pretrained`.
            RuntimeError: ``model`` is another base than the one the prompts were trained on.
        """
        from .artifacts import CONFIG, TENSORS, load_prompts
        folder = path if osp.isdir(path) else osp.dirname(path)
        config_file = osp.join(folder, CONFIG)
        if not osp.isfile(config_file):
            raise FileNotFoundError(f'{config_file} does not exist; from_pretrained reads a folder written by '
                                    'PromptModel.save_pretrained')
        with open(config_file) as f:
            info = json.load(f)
        target = next((t for t in info.get('targets', []) if t.get('module') == '' and 'host_path' in t), None)
        if target is None:
            raise ValueError(f'{config_file} was not written by PromptModel.save_pretrained (it describes '
                             f'{[t.get("module") for t in info.get("targets", [])]}); load config-trained prompts '
                             'with tools/test.py or promptkit.artifacts.load_prompts on the model the config builds')
        pm = cls(model, target.get('prompt_cfg'), target['train'], host=target['host_path'])
        try:
            load_prompts(pm, osp.join(folder, TENSORS))
        except Exception:
            pm.unload()  # leave the caller's model as it was
            raise
        return pm

    def unload(self) -> nn.Module:
        """Remove the prompts and give back the original model, bit-identical to what was wrapped.

        Forwards are restored, the parameters this model trained (heads, norms) get their values from wrapping
        time back (``save_pretrained`` first to keep them) and every ``requires_grad`` is what it was. The
        PromptModel is empty afterwards.
        """
        model = self.base_model
        self.host.detach()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self._original:
                    p.copy_(self._original[name])
                p.requires_grad_(self._requires_grad[name])
        self._original = {}
        del self._modules['base_model']
        self._modules.pop('prompt', None)
        return model


def get_prompt_model(model: nn.Module, prompt: dict | None = None, train: Sequence[str] = (),
                     host: str | None = None) -> PromptModel:
    """Attach a prompt strategy to ``model`` and freeze everything else, PEFT's ``get_peft_model`` for prompts.

    Args:
        model: A model a promptkit host understands, or one holding such a model: a timm ``VisionTransformer``, an
            open_clip CLIP model or its ``visual`` tower, an mmaction2 recognizer or VideoMAE backbone.
        prompt: Prompt strategy config, e.g. ``dict(type='AttentionPrompt', num_tokens=8)`` (``PROMPTS``);
            None trains only what ``train`` names.
        train: Besides the prompts, what to train: ``'head'`` (timm: ``get_classifier()``; open_clip:
            ``proj``; mmaction2 recognizer: ``cls_head``), a role of the host (``'head_norm'``) or a module or
            parameter path of ``model``. Defaults to ().
        host: Path of the host inside ``model`` when promptkit cannot tell. Defaults to None.

    Returns:
        The :class:`PromptModel`; ``model`` itself is modified in place (forwards, ``requires_grad``) until
        ``unload()``.

    Examples:
        >>> import timm, promptkit
        >>> vit = timm.create_model('vit_base_patch16_224', pretrained=False, num_classes=10)
        >>> pm = promptkit.get_prompt_model(vit, prompt=dict(type='AttentionPrompt', num_tokens=8), train=('head',))
        >>> pm.print_trainable_parameters()
    """
    if isinstance(train, str):
        train = (train,)
    return PromptModel(model, prompt, train, host)
