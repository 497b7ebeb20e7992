"""The cost report's files: a markdown table with its conventions, a CSV of every column, a bar chart."""
from __future__ import annotations

import csv
import os
import os.path as osp
from typing import Any, Sequence

import torch

from .cost import COLUMNS


def _fmt(value: Any, spec: str) -> str:
    return '–' if value is None else format(value, spec)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The report table: counts as integers, FLOPs in G, times in ms."""
    head = ['config', 'prompt', 'weights', 'input (one view)', 'views', 'trainable', 'total', 'trainable %',
            'prompt file (KiB)', 'GFLOPs/view', 'bare GFLOPs', 'extra GFLOPs', 'extra %', 'attn GFLOPs',
            'GFLOPs/sample', 'latency (ms)', 'bare latency (ms)', 'throughput (views/s)', 'train step (ms)',
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
                 _fmt(r['extra_pct'], '.2f'), g('attn_flops'), g('flops_per_sample'), _fmt(r['latency_ms'], '.2f'),
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
        ('- FLOPs: one forward (host + head) of one view (a video clip at one crop, or an image at one crop) at the '
         'shape the model was built for, counted with `torch.utils.flop_counter` plus `promptkit.flops` formulas '
         'for attention kernels torch leaves at 0 (CPU SDPA). **1 multiply-add = 2 FLOPs** (MMEngine/fvcore count '
         '1). Matmuls, convolutions and attention are counted; elementwise ops, softmax and norms are not. attn = '
         'the q·kᵀ and attn·v products. Per sample = per view × views (clips × crops of the test pipeline).'),
        "- bare = the same config built with the wrapper's `prompt=None`; extra = prompted − bare.",
        '- Weights are random (`pretrained=None`): FLOPs, time and memory do not depend on weight values.',
        f'- Peak training memory: {memory}.',
        ('- Prompt file: size of the `prompts.safetensors` training writes (every tensor `trained_state_dict` '
         'keeps: prompts, head, trained norms, and buffers of a host that is not wholly frozen), JSON header '
         'included.'),
    ]
    notes += [f'- Input shape of {r["config"]}: {r["shape_source"]}.' for r in rows
              if r.get('shape_source') != 'model = test pipeline']
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
