# Attention Prompt Tuning, VideoMAE ViT-B (Kinetics-400 pre-trained, 16x4, mask 0.9, 1600 epochs), UCF101.
# Official script ucf101 ViT-B viu2: 8 GPUs x 8 videos, T = 400 prompts, lr 0.05 x 64/256, 50 epochs,
# dense sampling (16 frames, stride 4), flip, test 5 clips x 3 crops. (viu3: 6 x 8 videos, T = 1, 100 epochs.)
_base_ = ['../_base_/apt_videomae_vit-b.py']

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/ucf101/videos'
ann_file_train = 'data/ucf101/ucf101_train_split_1_videos.txt'
ann_file_val = 'data/ucf101/ucf101_val_split_1_videos.txt'
pretrained = 'checkpoints/videomae_vit-b_k400_pretrain_1600e.pth'  # VideoMAE *pre-training* checkpoint
num_gpus, videos_per_gpu, num_workers = 8, 8, 8
# ------------------------------------------------------------------------------------------------
base_lr, num_tokens, num_classes, num_epochs, test_clips = 0.05, 400, 101, 50, 5

model = dict(backbone=dict(pretrained=pretrained, prompt=dict(num_tokens=num_tokens)),
             cls_head=dict(num_classes=num_classes))
optim_wrapper = dict(optimizer=dict(lr=base_lr * num_gpus * videos_per_gpu / 256))
train_cfg = dict(max_epochs=num_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - 10, eta_min=1e-6 * num_gpus * videos_per_gpu / 256,
         by_epoch=True, begin=10, end=num_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=num_gpus * videos_per_gpu)

# RandAugment (official rand-m4-n2-mstd0.2-inc1 ~ torchvision 2 ops, magnitude 12 of 31), random-resized
# crop to 224, horizontal flip; 2 augmented clips per video per step (official --num_sample 2).
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='TorchVisionWrapper', op='RandAugment', num_ops=2, magnitude=12),
    dict(type='RandomResizedCrop', area_range=(0.08, 1.0), aspect_ratio_range=(0.75, 1.3333)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=test_clips, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=videos_per_gpu, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='repeat_pseudo_collate'),
    dataset=dict(type='RepeatAugDataset', num_repeats=2, sample_once=True, ann_file=ann_file_train,
                 data_prefix=dict(video=data_root), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=videos_per_gpu, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
