"""The cost of a prompted model, measured from its MMEngine config: parameters, prompt-file size, FLOPs with
attention, the extra FLOPs over the bare host, latency, throughput, training-step time and peak training memory.

``tools/analysis/prompt_cost.py`` is the command-line front end; ``measure_config`` does the work for one config
and ``write_report`` writes the markdown / CSV / PNG. Models are built with random weights (``pretrained=None``):
FLOPs, time and memory do not depend on weight values.
"""
from __future__ import annotations

import copy
import csv
import gc
import math
import os
import os.path as osp
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .flops import flops_breakdown

#: CSV columns, in order. FLOPs are integers (one multiply-add = 2 FLOPs), for one view unless named per video.
COLUMNS = ('config', 'prompt', 'weights', 'input_shape', 'shape_source', 'views', 'trainable_params',
           'total_params', 'trainable_pct', 'prompt_file_bytes', 'flops', 'bare_flops', 'extra_flops', 'extra_pct',
           'attn_flops', 'flops_per_video', 'latency_ms', 'bare_latency_ms', 'throughput', 'train_step_ms',
           'peak_train_mem_mib', 'ppt')

_SAMPLERS = ('SampleFrames', 'UniformSample', 'UniformSampleFrames', 'DenseSampleFrames')
_CROPS = {'CenterCrop': 1, 'RandomCrop': 1, 'ThreeCrop': 3, 'TenCrop': 10}


@dataclass
class InputSpec:
    """One view of the test input and the number of views per video.

    Attributes:
        channels, frames, height, width: The (C, T, H, W) of one view (one clip, one crop).
        clips: Clips sampled per video at test time.
        crops: Spatial crops per clip at test time.
        source: Where the shape came from (``'test pipeline'`` or ``'--shape'``), plus any assumption made.
    """

    channels: int
    frames: int
    height: int
    width: int
    clips: int = 1
    crops: int = 1
    source: str = 'test pipeline'

    @property
    def views(self) -> int:
        return self.clips * self.crops

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.channels, self.frames, self.height, self.width


def _test_pipeline(cfg) -> list:
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while 'pipeline' not in dataset and 'dataset' in dataset:  # RepeatDataset and similar wrappers
        dataset = dataset['dataset']
    return list(dataset.get('pipeline') or cfg.get('test_pipeline') or [])


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """mmaction2 sizes: an int is square, a pair is (w, h)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def test_input_spec(cfg, shape: Sequence[int] | None = None) -> InputSpec:
    """Derive one test view's (C, T, H, W) and the views per video from the config's test pipeline.

    Frames are the sampler's ``clip_len`` and clips its ``num_clips``; the spatial size is the last crop's size,
    else the last ``Resize`` (a short-side resize ``(-1, s)`` is taken as s×s: square frames assumed).

    Args:
        cfg: An MMEngine ``Config``.
        shape: ``(T, H, W)`` overriding the pipeline; clips and crops still come from the pipeline when found.

    Raises:
        ValueError: When the pipeline does not give the shape and ``shape`` is not given.
    """
    backbone = cfg.model.get('backbone', {})
    channels = int(backbone.get('backbone', backbone).get('in_channels', 3))
    frames = size = None
    clips = crops = 1
    assumed = ''
    for t in _test_pipeline(cfg):
        kind = str(t.get('type', '')).split('.')[-1]
        if kind in _SAMPLERS:
            frames, clips = t.get('clip_len'), t.get('num_clips', 1) * (2 if t.get('twice_sample') else 1)
        elif kind == 'Resize':
            w, h = _pair(t['scale'])
            if t.get('keep_ratio', True) and -1 in (w, h):
                size, assumed = (max(w, h),) * 2, ' (short-side resize: square frames assumed)'
            else:
                size, assumed = (w, h), ''
        elif kind in _CROPS:
            size, crops, assumed = _pair(t['crop_size']), _CROPS[kind], ''
    if shape is not None:
        T, H, W = (int(s) for s in shape)
        return InputSpec(channels, T, H, W, clips, crops, source='--shape')
    if frames is None or size is None:
        raise ValueError(f'cannot derive the test input shape from the test pipeline of {cfg.filename} (found '
                         f'frames={frames}, size={size}); pass --shape T H W')
    return InputSpec(channels, int(frames), int(size[1]), int(size[0]), clips, crops,
                     source='test pipeline' + assumed)


def weights_note(cfg) -> str:
    """How the weights of the measured model relate to the config's ``pretrained=`` (never loaded here)."""
    path = cfg.model.get('backbone', {}).get('pretrained')
    if not path:
        return 'random (no pretrained)'
    if osp.exists(path):
        return f'random ({osp.basename(path)} not loaded)'
    return f'random ({osp.basename(path)} missing)'


def build_model(cfg, prompt: bool = True, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` with mmaction2's registry, with ``pretrained=None`` (and without prompts when
    ``prompt=False``: the bare host, ``model.backbone.prompt=None``)."""
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    from mmaction.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    backbone = model_cfg.get('backbone', {})
    if 'pretrained' in backbone:
        backbone['pretrained'] = None
    if not prompt and 'prompt' in backbone:
        backbone['prompt'] = None
    return MODELS.build(model_cfg).to(device)


def prompt_of(model: nn.Module) -> nn.Module | None:
    backbone = getattr(model, 'backbone', None)
    return getattr(backbone, 'prompt', None)


def describe_prompt(model: nn.Module) -> str:
    """A short name: ``'AttentionPrompt T=8, 4 layers'``, ``'none (full fine-tune)'``, ``'none (frozen)'``."""
    strategy = prompt_of(model)
    if strategy is not None:
        layers = len(getattr(strategy, 'targeted', []) or [])
        return f'{type(strategy).__name__} T={getattr(strategy, "num_tokens", "?")}, {layers} layers'
    host = getattr(getattr(model, 'backbone', None), 'backbone', None)
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
    from .artifacts import TENSORS, save_prompts
    with tempfile.TemporaryDirectory() as tmp:
        # A stand-in fingerprint of the real length: hashing every frozen weight would change nothing here.
        save_prompts(model, tmp, base_fingerprint='0' * 16, config=model_cfg)
        return os.path.getsize(osp.join(tmp, TENSORS))


def _autocast(device: str, amp: bool):
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp)


def median_ms(fn: Callable[[], Any], device: str, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in ms after ``warmup`` calls: CUDA events on a GPU, ``perf_counter`` on CPU."""
    for _ in range(warmup):
        fn()
    times = []
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def forward_latency_ms(model: nn.Module, inputs: torch.Tensor, device: str, repeats: int, warmup: int,
                       amp: bool) -> float:
    """Median inference latency of one forward (backbone + head) on ``inputs`` (B, views, C, T, H, W)."""
    model.eval()

    def run() -> None:
        with torch.no_grad(), _autocast(device, amp):
            model(inputs, mode='tensor', stage='head')
    return median_ms(run, device, repeats, warmup)


def _rss_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.MULTILINE).group(1))


def _reset_peak_rss() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so the resident size is what is live, and
    reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5). False where that is not possible."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def saved_activation_bytes(fn: Callable[[], Any], model: nn.Module) -> int:
    """Bytes of the tensors autograd keeps for backward while ``fn()`` runs a forward: one count per distinct
    storage, the model's parameters excluded. Device-independent and deterministic, unlike a process's peak memory,
    so it compares the activation memory of training variants on CPU as well.

    Written by hand: ``torch.autograd.graph.saved_tensors_hooks`` sees each saved tensor, nothing sums them.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params and s.nbytes():
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def train_step_cost(model: nn.Module, cfg, spec: InputSpec, batch: int, device: str, repeats: int, warmup: int,
                    amp: bool) -> tuple[float, float | None]:
    """Median time of one ``model.train_step`` (data preprocessor, forward, loss, backward, the config's
    optimizer step) and the peak memory of training, in MiB.

    Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` (weights included). On CPU it is the growth of the
    process's peak RSS over its resident size before the first step (Linux ``VmHWM`` after ``clear_refs``):
    optimizer states, gradients and activations, as seen by the OS; None where that cannot be read.

    Returns:
        (step time in ms, peak memory in MiB or None).
    """
    from mmaction.structures import ActionDataSample
    from mmengine.optim import build_optim_wrapper
    model.train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    C, T, H, W = spec.shape
    num_classes = int(cfg.model.get('cls_head', {}).get('num_classes', 2))
    data = dict(inputs=[torch.randint(0, 256, (1, C, T, H, W), dtype=torch.uint8) for _ in range(batch)],
                data_samples=[ActionDataSample().set_gt_label(i % num_classes) for i in range(batch)])
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss_ok = not device.startswith('cuda') and _reset_peak_rss()
    rss0 = _rss_kib('VmRSS') if rss_ok else 0
    ms = median_ms(lambda: model.train_step(data, optim_wrapper), device, repeats, warmup)
    if device.startswith('cuda'):
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = (_rss_kib('VmHWM') - rss0) / 1024 if rss_ok else None
    optim_wrapper.zero_grad()
    return ms, peak


def ppt(accuracy: float, trainable: int) -> float:
    """V-PETL's Performance-Parameter Trade-off: M·exp(−log10(P/C + 1)), M accuracy (%), P trainable, C = 1e7."""
    return accuracy * math.exp(-math.log10(trainable / 1e7 + 1))


def _attention_flops(breakdown: dict[str, int]) -> int:
    """FLOPs of attention ops (SDPA kernels; ``bmm`` too, which only hand-written attention uses in these hosts)."""
    return sum(n for op, n in breakdown.items() if 'attention' in op or op == 'aten.bmm')


def measure_config(cfg, *, device: str = 'cpu', batch: int = 1, train_batch: int | None = None,
                   repeats: int = 5, warmup: int = 2, amp: bool = False, shape: Sequence[int] | None = None,
                   accuracy: float | None = None, train: bool = True) -> dict[str, Any]:
    """Every number of one report row (see ``COLUMNS``) for an MMEngine config of an mmaction2 recognizer.

    Args:
        cfg: The ``Config``, overrides applied.
        device: ``'cpu'`` or ``'cuda'``.
        batch: Clips per forward for latency and throughput.
        train_batch: Clips per training step; defaults to the config's ``train_dataloader.batch_size``.
        repeats: Timed repetitions (the median is reported).
        warmup: Untimed calls before timing.
        amp: bf16 autocast for the forward and ``AmpOptimWrapper(dtype='bfloat16')`` for training.
        shape: ``(T, H, W)`` overriding the test pipeline.
        accuracy: Top-1 accuracy (%) of this config, for PPT; None leaves PPT empty.
        train: Measure the training step (time and memory).
    """
    spec = test_input_spec(cfg, shape)
    row: dict[str, Any] = dict(config=osp.splitext(osp.basename(cfg.filename or 'config'))[0],
                               weights=weights_note(cfg), input_shape='x'.join(map(str, spec.shape)),
                               shape_source=spec.source, views=spec.views)
    model = build_model(cfg, prompt=True, device=device)
    row['prompt'] = describe_prompt(model)
    row['trainable_params'], row['total_params'] = param_counts(model)
    row['trainable_pct'] = 100 * row['trainable_params'] / max(row['total_params'], 1)
    row['prompt_file_bytes'] = prompt_file_bytes(model, cfg.model)

    one_view = torch.randn(1, 1, *spec.shape, device=device)  # (B=1, views=1, C, T, H, W)
    model.eval()
    ops = flops_breakdown(model, one_view, mode='tensor', stage='head')
    row['flops'], row['attn_flops'] = sum(ops.values()), _attention_flops(ops)
    row['flops_per_video'] = row['flops'] * spec.views
    clips = torch.randn(batch, 1, *spec.shape, device=device)  # (B, views=1, C, T, H, W)
    row['latency_ms'] = forward_latency_ms(model, clips, device, repeats, warmup, amp)
    row['throughput'] = batch / row['latency_ms'] * 1e3
    if train:
        train_batch = train_batch or int(cfg.get('train_dataloader', {}).get('batch_size', 1))
        row['train_step_ms'], row['peak_train_mem_mib'] = train_step_cost(model, cfg, spec, train_batch, device,
                                                                          repeats, warmup, amp)
    has_prompt = prompt_of(model) is not None
    del model
    gc.collect()

    if has_prompt:
        bare = build_model(cfg, prompt=False, device=device).eval()
        row['bare_flops'] = sum(flops_breakdown(bare, one_view, mode='tensor', stage='head').values())
        row['bare_latency_ms'] = forward_latency_ms(bare, clips, device, repeats, warmup, amp)
        del bare
    else:
        row['bare_flops'], row['bare_latency_ms'] = row['flops'], row['latency_ms']
    row['extra_flops'] = row['flops'] - row['bare_flops']
    row['extra_pct'] = 100 * row['extra_flops'] / max(row['bare_flops'], 1)
    row['ppt'] = ppt(accuracy, row['trainable_params']) if accuracy is not None else None
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return {k: row.get(k) for k in COLUMNS}


def _fmt(value: Any, spec: str) -> str:
    return '–' if value is None else format(value, spec)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The report table: counts as integers, FLOPs in G, times in ms."""
    head = ['config', 'prompt', 'weights', 'input C×T×H×W', 'views', 'trainable', 'total', 'trainable %',
            'prompt file (KiB)', 'GFLOPs/view', 'bare GFLOPs', 'extra GFLOPs', 'extra %', 'attn GFLOPs',
            'GFLOPs/video', 'latency (ms)', 'bare latency (ms)', 'throughput (clips/s)', 'train step (ms)',
            'peak train mem (MiB)']
    with_ppt = any(r.get('ppt') is not None for r in rows)
    if with_ppt:
        head.append('PPT')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] * 4 + ['---:'] * (len(head) - 4)) + '|']
    for r in rows:
        def g(key: str, r: dict = r) -> str:  # FLOPs -> GFLOPs
            return _fmt(None if r.get(key) is None else r[key] / 1e9, '.4f')
        cells = [r['config'], r['prompt'], r['weights'], r['input_shape'].replace('x', '×'), str(r['views']),
                 f'{r["trainable_params"]:,}', f'{r["total_params"]:,}', _fmt(r['trainable_pct'], '.3f'),
                 _fmt(r['prompt_file_bytes'] / 1024, '.1f'), g('flops'), g('bare_flops'), g('extra_flops'),
                 _fmt(r['extra_pct'], '.2f'), g('attn_flops'), g('flops_per_video'), _fmt(r['latency_ms'], '.2f'),
                 _fmt(r['bare_latency_ms'], '.2f'), _fmt(r['throughput'], '.3g'), _fmt(r['train_step_ms'], '.1f'),
                 _fmt(r['peak_train_mem_mib'], '.1f')]
        if with_ppt:
            cells.append(_fmt(r['ppt'], '.2f'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def markdown_report(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The whole markdown file: the settings, the conventions, the table."""
    device = settings['device']
    memory = ('`torch.cuda.max_memory_allocated` over the training steps (weights included)' if device.startswith(
        'cuda') else 'growth of the process peak RSS over its resident size before the first training step '
              '(Linux VmHWM): optimizer states, gradients, activations; approximate, allocator-dependent')
    notes = [
        '# Prompt cost report', '',
        (f'- Device: {settings["device_name"]}; torch {torch.__version__}; forward precision: '
         f'{"bf16 autocast" if settings["amp"] else "fp32"}; latency batch {settings["batch"]}, training batch '
         f'{settings["train_batch"] or "from each config"}; median of {settings["repeats"]} after '
         f'{settings["warmup"]} warm-up calls ({"CUDA events" if device.startswith("cuda") else "wall clock"}).'),
        ('- FLOPs: one forward (backbone + head) of one view (one clip, one crop) at the test shape, counted with '
         '`torch.utils.flop_counter` plus `promptkit.flops` formulas for attention kernels torch leaves at 0 '
         '(CPU SDPA). **1 multiply-add = 2 FLOPs** (MMEngine/fvcore count 1). Matmuls, convolutions and attention '
         'are counted; elementwise ops, softmax and norms are not. attn = the q·kᵀ and attn·v products. '
         'Per video = per view × views (clips × crops).'),
        '- bare = the same config built with `model.backbone.prompt=None`; extra = prompted − bare.',
        '- Weights are random (`pretrained=None`): FLOPs, time and memory do not depend on weight values.',
        f'- Peak training memory: {memory}.',
        ('- Prompt file: size of the `prompts.safetensors` training writes (every tensor `trained_state_dict` '
         'keeps: prompts, head, trained norms, and buffers of a host that is not wholly frozen), JSON header '
         'included.'),
    ]
    notes += [f'- Input shape of {r["config"]}: {r["shape_source"]}.' for r in rows
              if r.get('shape_source') != 'test pipeline']
    if any(r.get('ppt') is not None for r in rows):
        notes.append('- PPT (V-PETL) = accuracy × exp(−log10(trainable / 1e7 + 1)), from the accuracies given.')
    return '\n'.join(notes) + '\n\n' + markdown_table(rows) + '\n'


def bar_chart(rows: Sequence[dict[str, Any]], path: str) -> None:
    """GFLOPs per view (bare + prompt extra, stacked) and latency (prompted beside bare) per config."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [r['config'] for r in rows]
    x = range(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(rows) + 4), 4.5))
    bare = [r['bare_flops'] / 1e9 for r in rows]
    extra = [max(r['extra_flops'], 0) / 1e9 for r in rows]
    ax1.bar(x, bare, label='bare host')
    ax1.bar(x, extra, bottom=bare, label='prompt extra')
    ax1.set_ylabel('GFLOPs per view (mult-add = 2)')
    ax1.set_title('Forward FLOPs')
    w = 0.4
    ax2.bar([i - w / 2 for i in x], [r['latency_ms'] for r in rows], w, label='prompted')
    ax2.bar([i + w / 2 for i in x], [r['bare_latency_ms'] for r in rows], w, label='bare host')
    ax2.set_ylabel('latency (ms)')
    ax2.set_title('Forward latency')
    for ax in (ax1, ax2):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=20, ha='right', fontsize=8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows: Sequence[dict[str, Any]], work_dir: str, settings: dict[str, Any]) -> dict[str, str]:
    """Write ``prompt_cost.md``, ``prompt_cost.csv`` and ``prompt_cost.png`` into ``work_dir``; return the paths."""
    os.makedirs(work_dir, exist_ok=True)
    paths = {ext: osp.join(work_dir, f'prompt_cost.{ext}') for ext in ('md', 'csv', 'png')}
    with open(paths['md'], 'w') as f:
        f.write(markdown_report(rows, settings))
    with open(paths['csv'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ('' if r.get(k) is None else r[k]) for k in COLUMNS} for r in rows)
    bar_chart(rows, paths['png'])
    return paths
