# Attention Prompt Tuning, VideoMAE ViT-B (SSv2 pre-trained, 2400 epochs), Something-Something V2.
# Official script ssv2 ViT-B viu2: 8 GPUs x 8 videos, T = 2 prompts, lr 0.05 x 64/256, 100 epochs,
# TSN-style 16-segment sampling, no flip, test 2 clips x 3 crops.
_base_ = ['../_base_/apt_videomae_vit-b.py']

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/sthv2/videos'  # folder of the .webm/.mp4 videos
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'  # mmaction2 lists: "<video> <label>" per line
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
pretrained = 'checkpoints/videomae_vit-b_ssv2_pretrain_2400e.pth'  # VideoMAE *pre-training* checkpoint
num_gpus, videos_per_gpu, num_workers = 8, 8, 8
# ------------------------------------------------------------------------------------------------
base_lr, num_tokens, num_classes = 0.05, 2, 174

model = dict(backbone=dict(pretrained=pretrained, prompt=dict(num_tokens=num_tokens)),
             cls_head=dict(num_classes=num_classes))
optim_wrapper = dict(optimizer=dict(lr=base_lr * num_gpus * videos_per_gpu / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=90, eta_min=1e-6 * num_gpus * videos_per_gpu / 256, by_epoch=True,
         begin=10, end=100, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=num_gpus * videos_per_gpu)

# RandAugment (official rand-m4-n2-mstd0.2-inc1; torchvision's is the closest: 2 ops, magnitude 4 of 10 levels
# -> 12 of 31 bins, no magnitude noise) then random-resized crop to 224; SSv2 is not flipped.
# Each video gives 2 augmented clips per step (official --num_sample 2), via mmaction2's RepeatAugDataset.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='TorchVisionWrapper', op='RandAugment', num_ops=2, magnitude=12),
    dict(type='RandomResizedCrop', area_range=(0.08, 1.0), aspect_ratio_range=(0.75, 1.3333)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16, num_clips=2, test_mode=True),
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
