"""One call that builds every tuning variant of a VideoMAE ViT, checks the prompted attention against the maths
reference, and times inference and training steps: the record behind ``docs/benchmarks.md``.

Variants (each built fresh from random weights with the same seed; times do not depend on weight values):

- ``mmaction2``: mmaction2's own VideoMAE ``VisionTransformer``, its hand-written softmax attention, untouched.
- ``bare``: the same backbone with promptkit's sites attached and no prompt (every attention through SDPA).
- ``full-ft`` / ``linear-probe``: the bare backbone trained whole / frozen with head + fc_norm trained.
- ``apt`` / ``apt-split``: Attention Prompt Tuning, P prompts per layer, with ``attention_impl('concat')`` /
  ``('split')`` (see ``promptkit/attention.py``).
- ``vpt-deep``: P deep prompt tokens per layer (they lengthen the sequence).
- ``approx`` / ``st-adapter``: Approximated Prompt Tuning (M = P) and ST-Adapter, where they are registered.

Inference: ``eval()``, ``no_grad``, autocast to ``--dtype``, CUDA events (GPU) or wall clock (CPU), warm-up,
median of ``--repeats``, the variants timed round-robin so that clock or load drifts reach all alike. Training
step: forward + linear head + cross-entropy, backward, AdamW step over the trainable parameters, same timing.
Ratios are to ``bare`` (inference) and to ``full-ft`` (training), all from one run. FLOPs (one multiply-add = 2;
attention counted, see ``promptkit/flops.py``) are counted at batch 1 for the forward and for forward + backward,
giving each ratio's FLOPs bound. Memory: the peak one training step allocates
above the resident weights and optimizer state (GPU), and on any device the bytes of activations autograd keeps for
backward.

Checks before timing: the one kernel's output and its gradients (q, k, v, prompts), for each implementation, against
``attention_reference`` in float64 at the benchmark's attention shape (batch 1) and dtype; and the APT model's
output under ``split`` against ``concat``. A failed check is reported and makes the command exit with status 1.

Examples:
    python tools/analysis/benchmark_gpu.py                       # GPU: ViT-B, 16x224^2, batch 8, bf16, P = 200
    python tools/analysis/benchmark_gpu.py --tiny --device cpu   # seconds on CPU (what the tests run)
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import os.path as osp
import platform
import statistics
import sys
from typing import Any, Callable

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import promptkit  # noqa: E402,F401  (drn stub before any mmaction import)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from promptkit.attention import attention_impl, attention_reference, prompted_attention, split_supported  # noqa
from promptkit.analysis import median_ms, saved_activation_bytes  # noqa: E402
from promptkit.flops import count_flops, flop_counter  # noqa: E402
from promptkit.models import PromptedBackbone  # noqa: E402
from promptkit.registry import PROMPTS  # noqa: E402

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
#: Relative tolerance (max error / max |reference|) of the kernel checks, per compute dtype.
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3, torch.float32: 1e-4}
#: The issue's targets on an H100 (ViT-B, 16x224^2, batch 8, bf16, P = 200).
TARGETS = {'apt_infer_vs_bare': 1.05, 'apt_train_vs_full_ft': 0.82}
COLUMNS = ('variant', 'description', 'trainable_params', 'infer_ms', 'infer_vs_bare', 'infer_flops_vs_bare',
           'train_ms', 'train_vs_full_ft', 'train_flops_vs_full_ft', 'step_peak_mib', 'saved_activation_mib')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtype', choices=sorted(DTYPES), help='autocast dtype (default: bf16 on cuda, fp32 on cpu)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--frames', type=int, default=16)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--prompts', type=int, default=200, help='P: prompts per layer (APT, VPT-deep, ApproxPrompt)')
    p.add_argument('--width', type=int, default=768)
    p.add_argument('--depth', type=int, default=12)
    p.add_argument('--heads', type=int, default=12)
    p.add_argument('--num-classes', type=int, default=174)
    p.add_argument('--repeats', type=int, help='timed calls, median reported (default: cuda 50, cpu 5)')
    p.add_argument('--warmup', type=int, help='untimed calls first (default: cuda 10, cpu 2)')
    p.add_argument('--no-timing', action='store_true',
                   help='checks, FLOPs and saved activations only (exact and device-independent; fast on CPU)')
    p.add_argument('--variants', nargs='+', help='subset of variants to run (default: all available)')
    p.add_argument('--tiny', action='store_true',
                   help='a tiny model (width 64, depth 2, 4 frames of 32^2, batch 2, P = 8) for a CPU smoke run')
    p.add_argument('--work-dir', default='work_dirs/benchmark_gpu')
    args = p.parse_args(argv)
    if args.tiny:
        args.width, args.depth, args.heads, args.frames, args.img_size, args.batch, args.prompts = \
            64, 2, 4, 4, 32, 2, 8
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available (use --device cpu --tiny for a smoke run)')
    args.dtype = DTYPES[args.dtype or ('bf16' if args.device == 'cuda' else 'fp32')]
    args.repeats = args.repeats or (50 if args.device == 'cuda' else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if args.device == 'cuda' else 2)
    args.patch = 8 if args.tiny else 16
    args.tokens = (args.frames // 2) * (args.img_size // args.patch) ** 2  # tubelet 2
    # Why the split kernel cannot run this benchmark's attention (device, dtype, head width), or None.
    args.split_unsupported = split_supported(
        torch.empty(1, args.heads, 0, args.width // args.heads, dtype=args.dtype, device=args.device))
    return args


def variants(P: int, width: int = 768) -> dict[str, dict[str, Any]]:
    """name -> how to build it; ``impl`` is the attention implementation, ``modes`` what is timed."""
    v = {
        'mmaction2': dict(stock=True, modes=('infer',), what="mmaction2's own VisionTransformer (no sites)"),
        'bare': dict(modes=('infer',), what='frozen, no prompt: every attention through SDPA'),
        'full-ft': dict(full_finetune=True, modes=('train',), what='every parameter trained'),
        'linear-probe': dict(train_roles=('head_norm',), modes=('train',), what='head + fc_norm trained'),
        'apt': dict(prompt=dict(type='AttentionPrompt', num_tokens=P), impl='concat',
                    what=f'APT, {P} K/V prompts per layer, concat + SDPA'),
        'apt-split': dict(prompt=dict(type='AttentionPrompt', num_tokens=P), impl='split',
                          what=f'APT, {P} K/V prompts per layer, split + LSE merge'),
        'vpt-deep': dict(prompt=dict(type='DeepPrompt', num_tokens=P), what=f'VPT-deep, {P} tokens per layer'),
    }
    if 'ApproxPrompt' in PROMPTS.module_dict:
        v['approx'] = dict(prompt=dict(type='ApproxPrompt', num_tokens=P),
                           what=f'Approximated Prompt Tuning, M = {P}')
    if 'STAdapter' in PROMPTS.module_dict:
        v['st-adapter'] = dict(prompt=dict(type='STAdapter', width=width // 2),
                               what=f'ST-Adapter before each MLP, width {width // 2} (the 12x384 preset at ViT-B)')
    for spec in v.values():
        spec.setdefault('modes', ('infer', 'train'))
    return v


class Classifier(nn.Module):
    """Backbone + a linear head: what a training step updates besides the backbone's trainable part."""

    def __init__(self, backbone: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build(spec: dict[str, Any], args: argparse.Namespace) -> Classifier:
    torch.manual_seed(0)
    vit = dict(type='VisionTransformer', img_size=args.img_size, patch_size=args.patch,
               embed_dims=args.width, depth=args.depth, num_heads=args.heads, mlp_ratio=4, qkv_bias=True,
               num_frames=args.frames, tubelet_size=2, norm_cfg=dict(type='LN', eps=1e-6), drop_path_rate=0.0,
               use_mean_pooling=True)
    if spec.get('stock'):
        from mmaction.registry import MODELS
        backbone = MODELS.build(vit)
    else:
        backbone = PromptedBackbone(vit, prompt=spec.get('prompt'), train_roles=spec.get('train_roles', ()),
                                    full_finetune=spec.get('full_finetune', False))
    return Classifier(backbone, args.width, args.num_classes).to(args.device)


def check_kernel(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each implementation's output and gradients against the float64 reference, at batch 1 of the model's shape."""
    g = torch.Generator().manual_seed(0)
    H, d, P, N = args.heads, args.width // args.heads, args.prompts, args.tokens
    qkv64 = torch.randn(1, N, 3, H, d, generator=g, dtype=torch.float64)
    pk64, pv64 = torch.randn(2, P, d, generator=g, dtype=torch.float64).unbind(0)
    dout = torch.randn(1, H, N, d, generator=g, dtype=torch.float64)
    leaves64 = [t.clone().requires_grad_() for t in (qkv64, pk64, pv64)]
    q, k, v = leaves64[0].permute(2, 0, 3, 1, 4).unbind(0)
    ref = attention_reference(q, k, v, leaves64[1], leaves64[2])
    ref_grads = torch.autograd.grad(ref, leaves64, dout)
    rows = []
    for impl in ('concat', 'split'):
        leaves = [t.detach().to(args.device, args.dtype).requires_grad_() for t in (qkv64, pk64, pv64)]
        q, k, v = leaves[0].permute(2, 0, 3, 1, 4).unbind(0)  # the sites' layout: views of one qkv tensor
        reason = args.split_unsupported if impl == 'split' else None
        if reason:
            rows.append(dict(check=f'kernel {impl}', status='skipped', detail=reason))
            continue
        with attention_impl(impl):
            out = prompted_attention(q, k, v, leaves[1], leaves[2])
        grads = torch.autograd.grad(out, leaves, dout.to(args.device, args.dtype))
        errors = {'out': _rel_error(out, ref)}
        errors.update({name: _rel_error(a, b) for name, a, b in zip(('dqkv', 'dpk', 'dpv'), grads, ref_grads)})
        worst = max(errors.values())
        rows.append(dict(check=f'kernel {impl}', status='pass' if worst <= TOLERANCE[args.dtype] else 'FAIL',
                         detail=', '.join(f'{k} {e:.1e}' for k, e in errors.items()) +
                         f' (max |error| / max |reference|; tolerance {TOLERANCE[args.dtype]:.0e})'))
    return rows


def _rel_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double().cpu() - ref.detach()).abs().max() / ref.detach().abs().max()).item()


def check_model(args: argparse.Namespace, x: torch.Tensor) -> dict[str, Any]:
    """The APT model's output with the split kernel against the same model with concat."""
    if 'apt-split' not in args.variants or args.split_unsupported:
        return dict(check='APT model split vs concat', status='skipped', detail='split not run here')
    model = build(variants(args.prompts, args.width)['apt'], args).eval()
    with torch.no_grad(), torch.autocast(args.device, dtype=args.dtype, enabled=args.dtype != torch.float32):
        with attention_impl('concat'):
            a = model(x).float()
        with attention_impl('split'):
            b = model(x).float()
    err = ((a - b).abs().max() / a.abs().max()).item()
    ok = err <= TOLERANCE[args.dtype]
    return dict(check='APT model split vs concat', status='pass' if ok else 'FAIL', detail=f'logits {err:.1e}')


def train_flops(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> int:
    model.train()
    with flop_counter() as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


class Variant:
    """One built variant with its inference call and training step (each under its attention implementation)."""

    def __init__(self, name: str, spec: dict[str, Any], args: argparse.Namespace, x: torch.Tensor,
                 y: torch.Tensor) -> None:
        self.name, self.spec, self.x, self.y = name, spec, x, y
        self.model = build(spec, args)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.impl = spec.get('impl', 'auto')
        self.amp = dict(device_type=args.device, dtype=args.dtype, enabled=args.dtype != torch.float32)
        self.opt = torch.optim.AdamW(self.trainable, lr=1e-4) if 'train' in spec['modes'] else None
        self.row: dict[str, Any] = dict(variant=name, description=spec['what'],
                                        trainable_params=sum(p.numel() for p in self.trainable))

    def infer(self) -> None:
        self.model.eval()
        with attention_impl(self.impl), torch.no_grad(), torch.autocast(**self.amp):
            self.model(self.x)

    def step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        with attention_impl(self.impl):
            with torch.autocast(**self.amp):
                logits = self.model(self.x)
            F.cross_entropy(logits.float(), self.y).backward()
        self.opt.step()

    def count(self) -> None:
        """FLOPs at batch 1 (forward; forward + backward) and the activations kept for backward at full batch."""
        with attention_impl(self.impl):
            self.row['infer_flops'] = count_flops(self.model.eval(), self.x[:1])
            if self.opt is not None:
                self.row['train_flops'] = train_flops(self.model, self.x[:1], self.y[:1])
                self.model.train()
                with torch.autocast(**self.amp):
                    self.row['saved_activation_mib'] = saved_activation_bytes(
                        lambda: self.model(self.x), self.model) / 2 ** 20


def interleaved_ms(calls: dict[str, Callable[[], None]], device: str, repeats: int, warmup: int
                   ) -> dict[str, float]:
    """Median time of each call, timed round-robin (A B C A B C ...) so that drifts in clock speed or in a
    shared machine's load reach every variant alike; each timing as ``promptkit.analysis.median_ms`` takes it."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(median_ms(fn, device, repeats=1, warmup=0))
    return {name: statistics.median(t) for name, t in times.items()}


def step_peak_mib(v: Variant) -> float:
    """CUDA: the peak memory one training step allocates above what is resident before it (activations,
    gradients, workspaces; the weights and the optimizer state, created in the warm-up, are resident)."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    v.step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def add_ratios(rows: list[dict[str, Any]]) -> None:
    by = {r['variant']: r for r in rows}
    bare, full = by.get('bare', {}), by.get('full-ft', {})
    for r in rows:
        if 'infer_ms' in r and 'infer_ms' in bare:
            r['infer_vs_bare'] = r['infer_ms'] / bare['infer_ms']
        if 'infer_flops' in bare:
            r['infer_flops_vs_bare'] = r['infer_flops'] / bare['infer_flops']
        if 'train_ms' in r and 'train_ms' in full:
            r['train_vs_full_ft'] = r['train_ms'] / full['train_ms']
        if 'train_flops' in r and 'train_flops' in full:
            r['train_flops_vs_full_ft'] = r['train_flops'] / full['train_flops']


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's three targets, read off this run's rows (meaningful at the default ViT-B shape on a GPU)."""
    by = {r['variant']: r for r in rows}
    apt = [by[n] for n in ('apt', 'apt-split') if n in by]
    out = []
    if apt and 'infer_vs_bare' in apt[0]:
        best = min(apt, key=lambda r: r['infer_ms'])
        out.append(dict(target=f'APT inference <= {TARGETS["apt_infer_vs_bare"]}x bare', variant=best['variant'],
                        measured=f'{best["infer_vs_bare"]:.3f}x', bound=f'{best["infer_flops_vs_bare"]:.3f}x FLOPs',
                        met=best['infer_vs_bare'] <= TARGETS['apt_infer_vs_bare']))
    if apt and 'train_vs_full_ft' in apt[0]:
        best = min(apt, key=lambda r: r['train_ms'])
        out.append(dict(target=f'APT training step <= {TARGETS["apt_train_vs_full_ft"]}x full fine-tuning',
                        variant=best['variant'], measured=f'{best["train_vs_full_ft"]:.3f}x',
                        bound=f'{best["train_flops_vs_full_ft"]:.3f}x FLOPs',
                        met=best['train_vs_full_ft'] <= TARGETS['apt_train_vs_full_ft']))
    if apt and 'mmaction2' in by and 'infer_ms' in apt[0]:
        best = min(apt, key=lambda r: r['infer_ms'])
        ratio = best['infer_ms'] / by['mmaction2']['infer_ms']
        out.append(dict(target="prompted VideoMAE faster than mmaction2's own forward", variant=best['variant'],
                        measured=f'{ratio:.3f}x mmaction2', bound='', met=ratio < 1.0))
    return out


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import mmaction
    env = dict(device=torch.cuda.get_device_name() if args.device == 'cuda' else
               f'CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads',
               torch=torch.__version__, mmaction2=mmaction.__version__, python=platform.python_version(),
               dtype=str(args.dtype).replace('torch.', ''), command=' '.join([osp.relpath(__file__)] + sys.argv[1:]))
    if args.device == 'cuda':
        env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    env['shape'] = (f'ViT width {args.width}, depth {args.depth}, {args.heads} heads; batch {args.batch} x '
                    f'{args.frames}x{args.img_size}^2 (patch {args.patch}, tubelet 2: {args.tokens} tokens); '
                    f'P = {args.prompts}; '
                    f'median of {args.repeats} after {args.warmup} warm-up')
    return env


def _fmt(v: Any) -> str:
    if v is None:
        return ''
    if isinstance(v, float):
        return f'{v:.3f}' if v < 100 else f'{v:.1f}'
    if isinstance(v, int):
        return f'{v:,}'
    return str(v)


def markdown(env: dict[str, Any], checks: list[dict], rows: list[dict], goals: list[dict]) -> str:
    lines = ['| ' + ' | '.join(f'{k}' for k in env) + ' |', '|' + '---|' * len(env),
             '| ' + ' | '.join(str(v) for v in env.values()) + ' |', '',
             '| check | status | detail |', '|---|---|---|']
    lines += [f'| {c["check"]} | {c["status"]} | {c["detail"]} |' for c in checks]
    lines += ['', '| ' + ' | '.join(COLUMNS) + ' |', '|---|---|' + '---:|' * (len(COLUMNS) - 2)]
    lines += ['| ' + ' | '.join(_fmt(r.get(c)) for c in COLUMNS) + ' |' for r in rows]
    if goals:
        lines += ['', f'Targets, as the efficiency issue states them for an H100 at the default ViT-B shape (this run: '
                      f'{env["device"]}, {env["dtype"]}):', '',
                  '| target | best variant | measured | bound | met |', '|---|---|---:|---:|---|']
        lines += [f'| {g["target"]} | {g["variant"]} | {g["measured"]} | {g["bound"]} | {"yes" if g["met"] else "no"} |'
                  for g in goals]
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_flush_denormal(True)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_gpu', log_level='ERROR')  # quiet: the per-model trainable tables
    available = variants(args.prompts, args.width)
    unknown = set(args.variants or ()) - set(available)
    if unknown:
        raise SystemExit(f'unknown variants {sorted(unknown)}; available here: {list(available)}')
    args.variants = args.variants or list(available)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, args.img_size, args.img_size, generator=g).to(args.device)
    y = torch.randint(0, args.num_classes, (args.batch,), generator=g).to(args.device)

    checks = check_kernel(args) + [check_model(args, x)]
    built = []
    for name in args.variants:
        spec = available[name]
        if spec.get('impl') == 'split' and args.split_unsupported:
            checks.append(dict(check=name, status='skipped', detail=args.split_unsupported))
            continue
        built.append(Variant(name, spec, args, x, y))
        built[-1].count()
    for mode, key in () if args.no_timing else (('infer', 'infer_ms'), ('train', 'train_ms')):
        calls = {v.name: v.infer if mode == 'infer' else v.step for v in built if mode in v.spec['modes']}
        for name, ms in interleaved_ms(calls, args.device, args.repeats, args.warmup).items():
            next(v for v in built if v.name == name).row[key] = ms
    if args.device == 'cuda' and not args.no_timing:
        for v in built:
            if v.opt is not None:
                v.row['step_peak_mib'] = step_peak_mib(v)
    rows = [v.row for v in built]
    for r in rows:
        print(f'{r["variant"]}: ' + ', '.join(f'{k} {_fmt(v)}' for k, v in r.items() if k.endswith(('_ms', 'mib'))),
              flush=True)
    add_ratios(rows)
    goals = targets(rows)
    env = environment(args)
    os.makedirs(args.work_dir, exist_ok=True)
    md = markdown(env, checks, rows, goals)
    with open(osp.join(args.work_dir, 'benchmark.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.work_dir, 'benchmark.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + ('infer_flops', 'train_flops'), extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(environment=env, checks=checks, rows=rows, targets=goals), f, indent=1)
    print(md)
    print(f'written to {args.work_dir}/benchmark.{{md,csv,json}}')
    return 1 if any(c['status'] == 'FAIL' for c in checks) else 0


if __name__ == '__main__':
    sys.exit(main())
