# Stage 2 of the text-to-image CPU demo (tools/t2i_demo.py, docs/text_to_image.md) through tools/train.py:
# ApproxPrompt (M = 16, rank 4) on every attn1 + attn2 of the frozen tiny digits model, trained on scikit-learn's
# digits turned a quarter turn, validated at the end by the demo's judge (content accuracy, rotated-domain rate)
# on samples for the 359 held-out captions. The base is the diffusers folder the demo's stage 1 writes:
#   python tools/t2i_demo.py --methods none --seeds 0          # stage 1 only: <run folder>/base
#   python tools/train.py configs/approx_prompt/t2i_digits_demo.py --cfg-options model.pretrained=<run folder>/base
# The demo's own stage-2 settings: 400 steps at batch 64, AdamW at a constant lr (no warm-up, no clipping, no
# weight decay), 10 % empty captions, 25 DDIM steps without guidance.
_base_ = ['../_base_/t2i_runtime.py']

pretrained = 'work_dirs/t2i_demo/base'  # replace with <run folder>/base (--cfg-options model.pretrained=...)
digit_names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']

model = dict(
    type='PromptedTextToImage', pretrained=pretrained,
    prompt=dict(type='ApproxPrompt', num_tokens=16, rank=4),
    cfg_dropout=0.1, gradient_checkpointing=False,
    sampler=dict(type='DDIMScheduler', num_inference_steps=25, guidance_scale=1.0, seed=0))
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CaptionedDigitsDataset', split='train', rotate=1))
test_dataloader = dict(
    batch_size=120, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CaptionedDigitsDataset', split='test', rotate=1))
test_evaluator = dict(type='DigitsJudgeMetric', rotate=1)
test_cfg = dict(type='TestLoop')
# The runtime has no validation; here the same held-out captions are validated once, at the end.
val_dataloader = dict(_delete_=True, **test_dataloader)
val_evaluator = dict(_delete_=True, **test_evaluator)
val_cfg = dict(_delete_=True, type='ValLoop')

lr = 3e-3
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.0), clip_grad=None)
param_scheduler = []
max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters))
sample_captions = [f'a photo of the digit {d}' for d in digit_names]
custom_hooks = [
    dict(type='PromptCheckpointHook'),
    dict(type='SampleGridHook', captions=sample_captions, interval=200, num_images=4),
]
