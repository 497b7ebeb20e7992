# The runtime of the text-to-image configs: iteration-based training (diffusers' examples count steps), AdamW,
# constant lr after a short warm-up, prompt-only checkpoints and prompts.safetensors at the end, sample grids.
# The model and data configs set the rest.
default_scope = 'promptkit'
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

max_iters = 1000
lr = 1e-3
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-2),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# Evaluation (CLIP-T, CLIP-I, DINO, drift) is configured by the metric configs; training writes sample grids.
val_cfg = val_dataloader = val_evaluator = None

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
sample_captions = ['a photo of a dog']
custom_hooks = [
    dict(type='PromptCheckpointHook'),
    dict(type='SampleGridHook', captions=sample_captions, interval=250, num_images=2),
]
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
