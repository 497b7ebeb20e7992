"""The cost of a prompted model, measured from its MMEngine config: parameters, prompt-file size, FLOPs with
attention, the extra FLOPs over the bare host, latency, throughput, training-step time and peak training memory.

``tools/analysis/prompt_cost.py`` is the command-line front end; :func:`measure_config` does the work for one
config and :mod:`promptkit.analysis.report` writes the markdown / CSV / PNG. Models are built with random weights
(``pretrained=None``): FLOPs, time and memory do not depend on weight values.

Any promptkit wrapper works, video or image: the wrapper gives its own input through ``dummy_inputs(batch_size)``
(the shape its host was built for), and :class:`Probe` knows how the model that holds it is called.
"""
from __future__ import annotations

import copy
import gc
import math
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..flops import flops_breakdown
from .timing import autocast, median_ms, reset_peak_rss, rss_kib

#: CSV columns, in order. FLOPs are integers (one multiply-add = 2 FLOPs), for one view unless named per sample
#: (one video or image: all its test views).
COLUMNS = ('config', 'prompt', 'weights', 'input_shape', 'shape_source', 'views', 'trainable_params',
           'total_params', 'trainable_pct', 'prompt_file_bytes', 'flops', 'bare_flops', 'extra_flops', 'extra_pct',
           'attn_flops', 'flops_per_sample', 'latency_ms', 'bare_latency_ms', 'throughput', 'train_step_ms',
           'peak_train_mem_mib', 'ppt')

_SAMPLERS = ('SampleFrames', 'UniformSample', 'UniformSampleFrames', 'DenseSampleFrames')
_CROPS = {'CenterCrop': 1, 'RandomCrop': 1, 'ThreeCrop': 3, 'TenCrop': 10}


@dataclass
class InputSpec:
    """What the test pipeline says about one sample's views.

    Attributes:
        clips: Clips sampled per video at test time (1 for images).
        crops: Spatial crops per clip at test time.
        frames: The sampler's ``clip_len`` (None for images or when the pipeline does not say).
        size: (H, W) of one view from the last crop or resize (None when the pipeline does not say).
    """

    clips: int = 1
    crops: int = 1
    frames: int | None = None
    size: tuple[int, int] | None = None

    @property
    def views(self) -> int:
        return self.clips * self.crops


def _test_pipeline(cfg) -> list:
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while 'pipeline' not in dataset and 'dataset' in dataset:  # RepeatDataset and similar wrappers
        dataset = dataset['dataset']
    return list(dataset.get('pipeline') or cfg.get('test_pipeline') or [])


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """mmcv sizes: an int is square, a pair is (w, h)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def pipeline_views(cfg) -> InputSpec:
    """Clips and crops per sample from the config's test pipeline, and the view shape it produces where it says.

    Frames are the sampler's ``clip_len`` and clips its ``num_clips``; the spatial size is the last crop's size,
    else the last ``Resize`` that fixes both sides (a short-side resize leaves it open).
    """
    spec = InputSpec()
    for t in _test_pipeline(cfg):
        kind = str(t.get('type', '')).split('.')[-1]
        if kind in _SAMPLERS:
            spec.frames = t.get('clip_len')
            spec.clips = t.get('num_clips', 1) * (2 if t.get('twice_sample') else 1)
        elif kind == 'Resize':
            w, h = _pair(t['scale'])
            fixed = not t.get('keep_ratio', True) and -1 not in (w, h)
            spec.size = (h, w) if fixed else None
        elif kind in _CROPS:
            w, h = _pair(t['crop_size'])
            spec.size, spec.crops = (h, w), _CROPS[kind]
    return spec


def _wrapper_cfg(model_cfg: dict) -> dict:
    """The config of the promptkit wrapper inside ``model_cfg``: its ``backbone`` for an mmaction2 recognizer
    (``PromptedBackbone``), else the model itself (the image classifiers)."""
    backbone = model_cfg.get('backbone')
    return backbone if isinstance(backbone, dict) else model_cfg


def weights_note(cfg) -> str:
    """How the weights of the measured model relate to the config's ``pretrained=`` (never loaded here)."""
    path = _wrapper_cfg(cfg.model).get('pretrained')
    if not path:
        return 'random (no pretrained)'
    if osp.exists(path):
        return f'random ({osp.basename(path)} not loaded)'
    return f'random ({osp.basename(path)} missing)'


def build_model(cfg, prompt: bool = True, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` with mmaction2's registry with ``pretrained=None`` (and, when ``prompt=False``, without
    the strategy: the bare host, the wrapper's ``prompt=None``)."""
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    from mmaction.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    wrapper = _wrapper_cfg(model_cfg)
    if 'pretrained' in wrapper:
        wrapper['pretrained'] = None
    if not prompt:
        wrapper['prompt'] = None
        wrapper.pop('expected_trainable', None)  # the guard counts the prompted model
    return MODELS.build(model_cfg).to(device)


class Probe:
    """How the measurements call one built model: the promptkit wrapper in it and its forward.

    Two shapes of model hold a wrapper: the wrapper itself (``TimmClassifier``, ``OpenCLIPClassifier``: an
    MMEngine model taking (B, C, H, W)) or an mmaction2 recognizer whose ``backbone`` is a ``PromptedBackbone``
    (taking (B, views, C, T, H, W), logits with ``stage='head'``). The wrapper's ``dummy_inputs`` gives the shape.

    Args:
        model: The built model.

    Raises:
        TypeError: Neither the model nor its ``backbone`` has ``dummy_inputs``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        if hasattr(model, 'dummy_inputs'):
            self.wrapper, self.in_recognizer = model, False
        elif hasattr(getattr(model, 'backbone', None), 'dummy_inputs'):
            self.wrapper, self.in_recognizer = model.backbone, True
        else:
            raise TypeError(f'{type(model).__name__} holds no promptkit wrapper: the cost tools measure a promptkit '
                            'classifier (TimmClassifier, OpenCLIPClassifier) or an mmaction2 recognizer whose '
                            'backbone is promptkit.PromptedBackbone, each of which gives dummy_inputs()')
        self.forward_kwargs = dict(mode='tensor', stage='head') if self.in_recognizer else dict(mode='tensor')

    def inputs(self, batch_size: int) -> Tensor:
        """A normalised batch as ``model(x, **forward_kwargs)`` takes it: one view per sample."""
        x = self.wrapper.dummy_inputs(batch_size)
        return x.unsqueeze(1) if self.in_recognizer else x  # recognizers: (B, views = 1, C, T, H, W)

    def logits(self, x: Tensor) -> Tensor:
        return self.model(x, **self.forward_kwargs)

    def view_shape(self) -> tuple[int, ...]:
        """(C, T, H, W) of one video view or (C, H, W) of one image."""
        return tuple(self.wrapper.dummy_inputs(1).shape[1:])

    def train_batch(self, batch_size: int, num_classes: int) -> dict:
        """Raw data as the data preprocessor takes it: ``batch_size`` uint8 samples of one view, labelled."""
        from mmaction.structures import ActionDataSample
        shape = self.inputs(1).shape[1:]
        return dict(inputs=[torch.randint(0, 256, shape, dtype=torch.uint8) for _ in range(batch_size)],
                    data_samples=[ActionDataSample().set_gt_label(i % num_classes) for i in range(batch_size)])

    @property
    def strategy(self) -> nn.Module | None:
        return getattr(self.wrapper, 'prompt', None)

    def describe(self) -> str:
        """A short name: ``'AttentionPrompt T=8, 4 sites'``, ``'none (full fine-tune)'``, ``'none (frozen host)'``."""
        strategy = self.strategy
        if strategy is not None:
            size = getattr(strategy, 'num_tokens', None)
            size = f' T={size}' if size is not None else f' width={strategy.width}' if hasattr(strategy, 'width') \
                else ''
            return f'{type(strategy).__name__}{size}, {len(getattr(strategy, "sites", []))} sites'
        host = getattr(self.wrapper, 'backbone', None)
        if host is not None and all(p.requires_grad for p in host.parameters()):
            return 'none (full fine-tune)'
        return 'none (frozen host)'


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def prompt_file_bytes(model: nn.Module, model_cfg: dict | None = None) -> int:
    """Size of the ``prompts.safetensors`` that training writes for this model (``promptkit.artifacts``): the
    tensors ``trained_state_dict`` keeps plus its JSON header (which holds ``model_cfg``)."""
    from ..artifacts import TENSORS, save_prompts
    with tempfile.TemporaryDirectory() as tmp:
        # A stand-in fingerprint of the real length: hashing every frozen weight would change nothing here.
        save_prompts(model, tmp, base_fingerprint='0' * 16, config=model_cfg)
        return os.path.getsize(osp.join(tmp, TENSORS))


def forward_latency_ms(probe: Probe, inputs: Tensor, device: str, repeats: int, warmup: int, amp: bool) -> float:
    """Median inference latency of one forward (host + head) on ``inputs``."""
    probe.model.eval()

    def run() -> None:
        with torch.no_grad(), autocast(device, amp):
            probe.logits(inputs)
    return median_ms(run, device, repeats, warmup)


def train_step_cost(probe: Probe, cfg, batch: int, num_classes: int, device: str, repeats: int, warmup: int,
                    amp: bool) -> tuple[float, float | None]:
    """Median time of one ``model.train_step`` (data preprocessor, forward, loss, backward, the config's
    optimizer step) and the peak memory of training, in MiB.

    Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` (weights included). On CPU it is the growth of the
    process's peak RSS over its resident size before the first step (Linux ``VmHWM`` after ``clear_refs``):
    optimizer states, gradients and activations, as seen by the OS; None where that cannot be read.

    Returns:
        (step time in ms, peak memory in MiB or None).
    """
    from mmengine.optim import build_optim_wrapper
    model = probe.model.train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    data = probe.train_batch(batch, num_classes)
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss_ok = not device.startswith('cuda') and reset_peak_rss()
    rss0 = rss_kib('VmRSS') if rss_ok else 0
    ms = median_ms(lambda: model.train_step(data, optim_wrapper), device, repeats, warmup)
    if device.startswith('cuda'):
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = (rss_kib('VmHWM') - rss0) / 1024 if rss_ok else None
    optim_wrapper.zero_grad()
    return ms, peak


def ppt(accuracy: float, trainable: int) -> float:
    """V-PETL's Performance-Parameter Trade-off: M·exp(−log10(P/C + 1)), M accuracy (%), P trainable, C = 1e7."""
    return accuracy * math.exp(-math.log10(trainable / 1e7 + 1))


def _attention_flops(breakdown: dict[str, int]) -> int:
    """FLOPs of attention ops (SDPA kernels; ``bmm`` too, which only hand-written attention uses in these hosts)."""
    return sum(n for op, n in breakdown.items() if 'attention' in op or op == 'aten.bmm')


def _shape_source(spec: InputSpec, shape: tuple[int, ...]) -> str:
    """Where the view shape came from, and whether the test pipeline agrees with it."""
    if len(shape) == 4:  # video: (C, T, H, W)
        said = (spec.frames, *spec.size) if spec.frames is not None and spec.size is not None else None
    else:  # image: (C, H, W)
        said = spec.size
    if said is None:
        return 'model (the test pipeline does not fix it)'
    if tuple(said) != shape[1:]:
        return f'model (the test pipeline gives {"x".join(map(str, said))})'
    return 'model = test pipeline'


def measure_config(cfg, *, device: str = 'cpu', batch: int = 1, train_batch: int | None = None,
                   repeats: int = 5, warmup: int = 2, amp: bool = False, accuracy: float | None = None,
                   train: bool = True) -> dict[str, Any]:
    """Every number of one report row (see ``COLUMNS``) for an MMEngine config of a promptkit model.

    The input of one view is the shape the model was built for (its wrapper's ``dummy_inputs``); the views per
    sample (clips × crops) come from the test pipeline.

    Args:
        cfg: The ``Config``, overrides applied.
        device: ``'cpu'`` or ``'cuda'``.
        batch: Samples (one view each) per forward for latency and throughput.
        train_batch: Samples per training step; defaults to the config's ``train_dataloader.batch_size``.
        repeats: Timed repetitions (the median is reported).
        warmup: Untimed calls before timing.
        amp: bf16 autocast for the forward and ``AmpOptimWrapper(dtype='bfloat16')`` for training.
        accuracy: Top-1 accuracy (%) of this config, for PPT; None leaves PPT empty.
        train: Measure the training step (time and memory).
    """
    spec = pipeline_views(cfg)
    model = build_model(cfg, prompt=True, device=device)
    probe = Probe(model)
    shape = probe.view_shape()
    row: dict[str, Any] = dict(config=osp.splitext(osp.basename(cfg.filename or 'config'))[0],
                               weights=weights_note(cfg), input_shape='x'.join(map(str, shape)),
                               shape_source=_shape_source(spec, shape), views=spec.views, prompt=probe.describe())
    row['trainable_params'], row['total_params'] = param_counts(model)
    row['trainable_pct'] = 100 * row['trainable_params'] / max(row['total_params'], 1)
    row['prompt_file_bytes'] = prompt_file_bytes(model, cfg.model)

    torch.manual_seed(0)
    one_view = probe.inputs(1)
    model.eval()
    ops = flops_breakdown(model, one_view, **probe.forward_kwargs)
    row['flops'], row['attn_flops'] = sum(ops.values()), _attention_flops(ops)
    row['flops_per_sample'] = row['flops'] * spec.views
    samples = probe.inputs(batch)
    row['latency_ms'] = forward_latency_ms(probe, samples, device, repeats, warmup, amp)
    row['throughput'] = batch / row['latency_ms'] * 1e3
    if train:
        with torch.no_grad():
            num_classes = probe.logits(one_view).shape[-1]
        train_batch = train_batch or int(cfg.get('train_dataloader', {}).get('batch_size', 1))
        row['train_step_ms'], row['peak_train_mem_mib'] = train_step_cost(probe, cfg, train_batch, num_classes,
                                                                          device, repeats, warmup, amp)
    has_prompt = probe.strategy is not None
    del model, probe
    gc.collect()

    if has_prompt:
        bare = Probe(build_model(cfg, prompt=False, device=device).eval())
        row['bare_flops'] = sum(flops_breakdown(bare.model, one_view, **bare.forward_kwargs).values())
        row['bare_latency_ms'] = forward_latency_ms(bare, samples, device, repeats, warmup, amp)
        del bare
    else:
        row['bare_flops'], row['bare_latency_ms'] = row['flops'], row['latency_ms']
    row['extra_flops'] = row['flops'] - row['bare_flops']
    row['extra_pct'] = 100 * row['extra_flops'] / max(row['bare_flops'], 1)
    row['ppt'] = ppt(accuracy, row['trainable_params']) if accuracy is not None else None
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return {k: row.get(k) for k in COLUMNS}
