"""The text-to-image demo, end to end on CPU in minutes: ``python tools/t2i_demo.py`` (``make t2i-demo``).

Data: scikit-learn's real 8×8 handwritten digits, captioned "a photo of the digit seven" (made in memory).

1. Stage 1, the "pre-trained" base: a tiny text-to-image model (a CLIP tokenizer from open_clip's BPE file, a
   2-layer CLIP text encoder, a 1×8×8 pixel-space diffusers UNet, a DDPM schedule; ``promptkit.t2i.tiny``) trained
   from scratch on the upright digits, 10 % empty captions for classifier-free guidance, then saved as a diffusers
   folder with ``save_pretrained``.
2. Stage 2, a new domain: the same captions, the digits rotated by a quarter turn. The frozen base is adapted by
   each method (approximated prompts, K/V prompts, PEFT LoRA, full fine-tuning of the UNet) for every seed.
3. Each model samples 20 images per digit (DDIM, classifier-free guidance) that the judge (logistic regressions
   fitted on the real digits, ``promptkit.evaluation.DigitsJudge``) scores: content accuracy (the captioned digit,
   turned back) and domain rate (judged rotated). Drift: 1 − cosine (pixels) between the tuned and the base model's
   images of ten captions unrelated to digits, same noise.

Prints a table (trainable parameters, content accuracy, domain rate, drift, train wall time; mean ± std over the
seeds) and writes it, the sample grids (PNG) and ``results.json`` to a new folder ``<work-dir>/<timestamp>/``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Callable, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

METHODS = ('none', 'approx', 'kv', 'lora', 'full')
NAMES = {'none': 'none (frozen base)', 'approx': 'ApproxPrompt, attn1+attn2, M={}', 'kv': 'K/V prompts, T={}',
         'lora': 'PEFT LoRA r={} (q, k, v, out)', 'full': 'full fine-tuning (UNet)'}
#: Captions the adaptation never sees, for drift (PEFT's image-generation benchmark uses ten unrelated prompts).
UNRELATED = ('a photo of a cat', 'a red car on a street', 'a bowl of fruit', 'a mountain landscape at dawn',
             'a portrait of an old man', 'the letter a', 'a blank white page', 'a wooden house',
             'a dog in the snow', 'an empty street at night')
#: Learning rates of stage 2 (AdamW, constant). ApproxPrompt, K/V prompts and LoRA: the best of {1e-3, 3e-3, 1e-2,
#: 3e-2} (K/V prompts: {1e-2, 3e-2, 1e-1}) on stage-2 seed 0, 400 steps, one 1,500-step base (docs/text_to_image.md);
#: full fine-tuning: not swept.
LR = dict(approx=3e-3, kv=3e-2, lora=1e-2, full=5e-4)


def set_seed(seed: int) -> torch.Generator:
    """Seed Python's ``random`` (the wrapper's caption dropout draws from it, as diffusers' training scripts do),
    numpy and torch, as MMEngine's Runner does; returns a torch generator for the batch indices."""
    from mmengine.runner import set_random_seed

    set_random_seed(seed)
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------- model
class DigitsModel:
    """Stage 1's model: the tiny components and the epsilon-prediction loss, text encoder included (training from
    scratch, which ``PromptedTextToImage`` does not do: it keeps the text encoder frozen)."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.unet, self.text_encoder = components['unet'], components['text_encoder']
        self.tokenizer, self.scheduler = components['tokenizer'], components['scheduler']
        self._cache: dict[str, torch.Tensor] = {}

    def components(self) -> dict[str, Any]:
        return dict(unet=self.unet, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                    scheduler=self.scheduler)

    def token_ids(self, captions: Sequence[str]) -> torch.Tensor:
        """(B, L) ids, padded to the tokenizer's length; the demo has eleven distinct captions, so ids are cached."""
        missing = [c for c in set(captions) if c not in self._cache]
        if missing:
            ids = self.tokenizer(missing, padding='max_length', truncation=True, return_tensors='pt').input_ids
            self._cache.update(zip(missing, ids))
        return torch.stack([self._cache[c] for c in captions])

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        return self.text_encoder(self.token_ids(captions)).last_hidden_state  # (B, L, C_text)

    def loss(self, images: torch.Tensor, captions: Sequence[str], cfg_dropout: float = 0.0) -> torch.Tensor:
        """Epsilon-prediction loss on images in [0, 1]; ``cfg_dropout`` of the captions become empty."""
        if cfg_dropout:
            drop = torch.rand(len(captions)) < cfg_dropout
            captions = ['' if d else c for c, d in zip(captions, drop.tolist())]
        x0 = images * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),))
        pred = self.unet(self.scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=self.encode(captions)).sample
        return F.mse_loss(pred, noise)


def pretrain(work_dir: str, steps: int, batch_size: int, lr: float, seed: int, log: Callable[[str], None]
             ) -> tuple[DigitsModel, float]:
    """Stage 1: train the tiny model from scratch on the upright digits; returns it and the wall time."""
    from promptkit.datasets import load_captioned_digits
    from promptkit.t2i.tiny import build_tiny_text_to_image

    images, _, captions = load_captioned_digits('train')
    gen = set_seed(seed)
    model = DigitsModel(build_tiny_text_to_image(osp.join(work_dir, 'tokenizer_files'), seed=seed))
    params = [*model.unet.parameters(), *model.text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    model.unet.train(), model.text_encoder.train()
    start = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        loss = model.loss(images[idx], [captions[i] for i in idx.tolist()], cfg_dropout=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            log(f'  stage 1 step {step + 1}/{steps}: loss {loss.item():.4f} ({time.time() - start:.0f} s)')
    model.unet.eval(), model.text_encoder.eval()
    return model, time.time() - start


# --------------------------------------------------------------------------------------------------- adaptation
class Adapted:
    """A stage-2 model: ``promptkit.PromptedTextToImage`` over the frozen base, and how to sample it with the
    adaptation switched off (the base, for drift)."""

    def __init__(self, method: str, model: Any) -> None:
        self.method, self.model = method, model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
        self._base_unet = copy.deepcopy(model.unet.state_dict()) if method == 'full' else None

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.params)

    def sample(self, captions: Sequence[str], seed: int, base: bool = False, **kw: Any) -> torch.Tensor:
        """Images (N, 1, 8, 8) in [0, 1]; ``base=True``: the same noise through the unadapted model."""
        if not base or self.method == 'none':
            return self.model.sample(list(captions), seed=seed, **kw)
        if self.method == 'lora':
            self.model.unet.disable_adapters()
            try:
                return self.model.sample(list(captions), seed=seed, **kw)
            finally:
                self.model.unet.enable_adapters()
        if self.method == 'full':
            tuned = copy.deepcopy(self.model.unet.state_dict())
            self.model.unet.load_state_dict(self._base_unet)
            try:
                return self.model.sample(list(captions), seed=seed, **kw)
            finally:
                self.model.unet.load_state_dict(tuned)
        with self.model.prompts_disabled():
            return self.model.sample(list(captions), seed=seed, **kw)


#: How each method is attached: ``PromptedTextToImage`` keywords (the strategies run in promptkit's diffusers
#: attention site on every attn1 (self) and attn2 (cross) of the UNet).
METHOD_CFG = dict(
    none=dict(),
    approx=dict(prompt=dict(type='ApproxPrompt', num_tokens=16, rank=4)),
    kv=dict(prompt=dict(type='AttentionPrompt', num_tokens=16, train_head_norm=False)),  # T = M: equal FLOPs
    lora=dict(lora=dict(r=4, target_modules=['to_q', 'to_k', 'to_v', 'to_out.0'])),
    full=dict(full_finetune=True))


def method_cfg(method: str, size: int | None = None) -> dict:
    """``METHOD_CFG[method]``, with ``size`` (if given) as M (approx), T (kv) or the LoRA rank."""
    if method not in METHOD_CFG:
        raise ValueError(f'unknown method {method!r}; choose from {METHODS}')
    cfg = copy.deepcopy(METHOD_CFG[method])
    if size is not None:
        if method in ('approx', 'kv'):
            cfg['prompt']['num_tokens'] = size
        elif method == 'lora':
            cfg['lora']['r'] = size
        else:
            raise ValueError(f'--size: {method!r} has no size; give it for approx, kv or lora')
    return cfg


def method_name(method: str, size: int | None = None) -> str:
    cfg = method_cfg(method, size)
    value = cfg['prompt']['num_tokens'] if 'prompt' in cfg else cfg['lora']['r'] if 'lora' in cfg else None
    return NAMES[method].format(value)


def adapt(method: str, base_folder: str, size: int | None = None) -> Adapted:
    """The frozen base from ``base_folder`` with ``method`` attached, as a ``promptkit.PromptedTextToImage``."""
    from promptkit.models.text_to_image import PromptedTextToImage

    model = PromptedTextToImage(pretrained=base_folder, cfg_dropout=0.1, **method_cfg(method, size))
    return Adapted(method, model)


def tune(adapted: Adapted, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """Stage 2: MMEngine ``train_step``s of the wrapper on the rotated digits (``CaptionedDigitsDataset`` items
    through ``pseudo_collate``), AdamW at a constant ``lr``; checks that every frozen tensor is bit-identical
    afterwards. Returns the wall time."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper

    from promptkit.datasets import CaptionedDigitsDataset

    if not adapted.params:
        return 0.0
    data = CaptionedDigitsDataset(split='train', rotate=1)
    gen = set_seed(seed)
    optim = OptimWrapper(torch.optim.AdamW(adapted.params, lr=lr, weight_decay=0.0))
    adapted.model.train()
    start = time.time()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch_size,), generator=gen).tolist()
        adapted.model.train_step(pseudo_collate([data[i] for i in idx]), optim)
    adapted.model.eval()
    seconds = time.time() - start
    changed = [n for n, p in adapted.model.named_parameters() if n in adapted.frozen and
               not torch.equal(p, adapted.frozen[n])]
    assert not changed, f'frozen parameters changed: {changed[:5]}'
    return seconds


# --------------------------------------------------------------------------------------------------- evaluation
def evaluate(adapted: Adapted, judge: Any, rotate: int, per_digit: int, seed: int, sample_kw: dict,
             drift_noise: int) -> dict[str, Any]:
    """Content accuracy and domain rate of ``per_digit`` samples per digit (``DigitsJudgeMetric``), drift on the
    unrelated captions (``Drift``, pixels), both through the MMEngine metrics' ``process`` / ``compute_metrics``."""
    from promptkit.datasets import digit_caption
    from promptkit.evaluation import DigitsJudgeMetric, Drift

    labels = torch.arange(10).repeat_interleave(per_digit)
    captions = [digit_caption(d) for d in labels.tolist()]
    images = adapted.sample(captions, 1000 + seed, **sample_kw)
    metric = DigitsJudgeMetric(rotate=rotate, judge=judge)
    metric.process({}, [dict(pred_image=im, gt_label=int(y), caption=c) for im, y, c in zip(images, labels, captions)])
    out = metric.compute_metrics(metric.results)
    if adapted.method != 'none' and drift_noise:
        unrelated = [c for c in UNRELATED for _ in range(drift_noise)]
        tuned = adapted.sample(unrelated, 2000 + seed, **sample_kw)
        base = adapted.sample(unrelated, 2000 + seed, base=True, **sample_kw)
        drift = Drift(feature_extractor='pixels')
        drift.process({}, [dict(pred_image=a, base_image=b) for a, b in zip(tuned, base)])
        out.update(drift.compute_metrics(drift.results))
    else:
        out['drift'] = 0.0  # the base itself
    out['images'] = images
    return out


def save_grid(images: torch.Tensor, per_digit: int, path: str, scale: int = 4) -> None:
    """One row per digit, ``per_digit`` (at most 10) columns, upscaled ``scale``× (nearest), as a PNG."""
    from torchvision.utils import save_image

    rows = images.view(10, per_digit, *images.shape[1:])[:, :min(per_digit, 10)]  # (10, cols, 1, 8, 8)
    flat = rows.reshape(-1, *images.shape[1:])
    big = F.interpolate(flat, scale_factor=scale, mode='nearest')
    save_image(big, path, nrow=rows.shape[1], padding=2, pad_value=0.5)


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` (sample std) over the seeds; one seed: the value alone (no spread to show)."""
    t = torch.tensor(values, dtype=torch.float64)
    return f'{t.mean():.3f} ± {t.std():.3f}' if len(t) > 1 else f'{t.item():.3f}'


def table(results: dict[str, list[dict]], base: dict[str, Any], sizes: dict[str, int] | None = None) -> str:
    lines = ['| method (trainable) | trainable params | content accuracy | rotated-domain rate | drift | '
             'train wall time |', '|---|---:|---:|---:|---:|---:|',
             f'| stage 1 base, upright digits (all) | {base["params"]:,} | {base["content_accuracy"]:.3f} | '
             f'{base["domain_rate"]:.3f} (upright) | - | '
             f'{"-" if base["seconds"] is None else format(base["seconds"], ".0f") + " s"} |']
    for method, runs in results.items():
        secs = [r['seconds'] for r in runs]
        lines.append(f'| {method_name(method, (sizes or {}).get(method))} | {runs[0]["trainable"]:,} | '
                     f'{mean_std([r["content_accuracy"] for r in runs])} | '
                     f'{mean_std([r["domain_rate"] for r in runs])} | {mean_std([r["drift"] for r in runs])} | '
                     f'{sum(secs) / len(secs):.0f} s |')
    return '\n'.join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/t2i_demo', help='parent of the run folder')
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='stage-2 seeds')
    parser.add_argument('--base', help='reuse a stage-1 diffusers folder instead of training one')
    parser.add_argument('--pretrain-steps', type=int, default=1500)
    parser.add_argument('--pretrain-lr', type=float, default=2e-3)
    parser.add_argument('--steps', type=int, default=400, help='stage-2 steps per method and seed')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--per-digit', type=int, default=20, help='samples per digit for the judge')
    parser.add_argument('--drift-noise', type=int, default=4, help='noises per unrelated caption for drift')
    parser.add_argument('--sample-steps', type=int, default=25, help='DDIM steps')
    parser.add_argument('--guidance', type=float, default=1.0,
                        help='classifier-free guidance scale (1: none; on the 1,500-step base: content 0.925 at 1, '
                             '0.95 at 1.5, 0.69 at 2, 0.145 at 3)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--lr', nargs='+', default=[], metavar='METHOD=LR',
                        help=f'stage-2 learning rates instead of the defaults {LR}, e.g. --lr approx=1e-2')
    parser.add_argument('--size', nargs='+', default=[], metavar='METHOD=N',
                        help='M of approx, T of kv, the rank of lora instead of 16, 16, 4, e.g. --size approx=24')
    args = parser.parse_args(argv)
    args.lr = dict(LR, **_pairs(parser, '--lr', args.lr, float, METHODS[1:]))
    args.size = _pairs(parser, '--size', args.size, int, ('approx', 'kv', 'lora'))
    return args


def _pairs(parser: argparse.ArgumentParser, flag: str, items: Sequence[str], kind: type, methods: Sequence[str]
           ) -> dict[str, Any]:
    """``['approx=1e-2', ...]`` → ``{'approx': 0.01}``; a bad item is one argparse error naming it."""
    out = {}
    for item in items:
        method, _, value = item.partition('=')
        try:
            if method not in methods:
                raise ValueError
            out[method] = kind(value)
        except ValueError:
            parser.error(f'{flag} {item!r}: expected METHOD={kind.__name__.upper()} with METHOD one of '
                         f'{", ".join(methods)}')
    return out


def quiet() -> None:
    """The table is the output: no progress bars from transformers / diffusers for each of the dozen models the
    demo loads and saves, and the wrapper's summary line (the table has the counts) only at warning level."""
    from diffusers.utils import logging as diffusers_logging
    from mmengine.logging import MMLogger
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    MMLogger.get_instance(f't2i_demo_{time.time_ns()}', log_level='WARNING')  # the current logger from here on


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet()
    from promptkit.evaluation import DigitsJudge
    from promptkit.t2i.tiny import save_tiny_text_to_image

    run_dir = osp.join(args.work_dir, time.strftime('%Y%m%d_%H%M%S'))
    while osp.exists(run_dir):  # a new folder every run: nothing is overwritten
        run_dir += '_'
    os.makedirs(run_dir)
    log_file = open(osp.join(run_dir, 'log.txt'), 'w')

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + '\n')
        log_file.flush()  # a long run's log.txt is readable while it runs

    log(f'+ {" ".join([osp.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])}')
    log(f'run folder: {run_dir}')
    start = time.time()
    sample_kw = dict(num_inference_steps=args.sample_steps, guidance_scale=args.guidance)
    judge = DigitsJudge(rotate=1)

    if args.base:
        base_folder, seconds = args.base, None
    else:
        model, seconds = pretrain(run_dir, args.pretrain_steps, args.batch_size, args.pretrain_lr, 0, log)
        base_folder = save_tiny_text_to_image(osp.join(run_dir, 'base'), model.components())
    frozen = adapt('none', base_folder)
    out = evaluate(frozen, judge, 0, args.per_digit, 0, sample_kw, 0)
    params = sum(p.numel() for p in [*frozen.model.unet.parameters(), *frozen.model.text_encoder.parameters()])
    base = dict(content_accuracy=out['content_accuracy'], domain_rate=out['domain_rate'], seconds=seconds,
                params=params)
    save_grid(out['images'], args.per_digit, osp.join(run_dir, 'samples_stage1_base.png'))
    log(f'stage 1: content accuracy {base["content_accuracy"]:.3f} (judged upright {base["domain_rate"]:.3f})'
        + (f', {seconds:.0f} s; saved {base_folder}' if seconds is not None else f' ({base_folder})'))

    results: dict[str, list[dict]] = {}
    for method in args.methods:
        for seed in args.seeds:
            set_seed(seed)
            adapted = adapt(method, base_folder, args.size.get(method))
            seconds = tune(adapted, args.steps, args.batch_size, args.lr.get(method, 0.0), seed)
            out = evaluate(adapted, judge, 1, args.per_digit, seed, sample_kw, args.drift_noise)
            if seed == args.seeds[0]:
                save_grid(out['images'], args.per_digit, osp.join(run_dir, f'samples_{method}.png'))
            out.pop('images')
            results.setdefault(method, []).append(dict(out, seconds=seconds, trainable=adapted.trainable,
                                                       seed=seed))
            log(f'{method} seed {seed}: {adapted.trainable:,} trainable, content {out["content_accuracy"]:.3f}, '
                f'rotated {out["domain_rate"]:.3f}, drift {out["drift"]:.4f}, {seconds:.0f} s')

    total = time.time() - start
    text = table(results, base, args.size)
    stage1 = f'base {args.base}' if args.base else f'{args.pretrain_steps} stage-1 steps'
    summary = (f'\ntext-to-image demo ({stage1}, {args.steps} stage-2 steps, batch '
               f'{args.batch_size}, seeds {args.seeds}, {args.per_digit} samples per digit, {args.sample_steps} '
               f'DDIM steps, guidance {args.guidance}; chance: content 0.100; {total:.0f} s in all):\n{text}')
    log(summary)
    with open(osp.join(run_dir, 'table.md'), 'w') as f:
        f.write(summary.strip() + '\n')
    record = dict(args=vars(args), base=base, results=results, seconds=total, run_dir=run_dir)
    with open(osp.join(run_dir, 'results.json'), 'w') as f:
        json.dump(record, f, indent=2)
    log(f'grids, table.md and results.json in {run_dir}; stage 2 through the Runner: python tools/train.py '
        f'configs/approx_prompt/t2i_digits_demo.py --cfg-options model.pretrained={base_folder}')
    log_file.close()
    return record


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    main()
