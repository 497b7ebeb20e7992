# The VAPT / VPT recipe for image classification (docs/methods.md §3), shared by configs/vapt/*: SGD (momentum 0.9),
# lr = base_lr x batch / 256, 10 linear warm-up epochs then cosine, both stepped per epoch, 100 epochs, batch 64,
# softmax cross-entropy (the models' loss). Model and data configs set the rest.
# Scope: mmaction2's, for its AccMetric (the predictions are mmaction2 ActionDataSamples); promptkit's own types
# carry the 'promptkit.' prefix. Image pipelines resolve in promptkit's scope (see promptkit/datasets/image_list.py).
default_scope = 'mmaction'
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

batch_size = 64  # total over all GPUs; lr below is scaled by it
# lr and wd come from a grid in the official code (lr in {50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05},
# wd in {0.01, 1e-3, 1e-4, 0}); per-task choices are not published. 5.0 is the grid's `--fast` starting lr.
base_lr = 5.0
weight_decay = 1e-4
num_epochs, warmup_epochs = 100, 10

# The official SGD optimiser exempts exactly one tensor from weight decay, the classifier's bias; every other
# trained tensor is decayed, the biases of the prompt modules included (so not bias_decay_mult=0). `head.bias` is
# that bias in TimmClassifier (backbone.head.bias) and in OpenCLIPClassifier's linear head (head.bias).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=base_lr * batch_size / 256, momentum=0.9, weight_decay=weight_decay),
    paramwise_cfg=dict(custom_keys={'head.bias': dict(decay_mult=0.0)}))
# VPT's WarmupCosineSchedule, stepped once per epoch: lr x e/10 in warm-up epoch e, then a half cosine to 0. MMEngine's
# LinearLR reaches the full lr one epoch earlier (0.001, 0.112, ..., 1.0 at epoch 9), then the cosine runs.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=num_epochs, val_begin=1, val_interval=num_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))
# Checkpoints hold the trained tensors and optimizer state only, plus a fingerprint of the frozen base;
# prompts.safetensors is written at the end.
custom_hooks = [dict(type='promptkit.PromptCheckpointHook'), dict(type='promptkit.TrainingCurvesHook')]
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42)  # the official VTAB final runs average seeds 42, 44, 82, 100, 800
