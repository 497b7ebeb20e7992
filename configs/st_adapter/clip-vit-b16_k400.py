# ST-Adapter on a frozen CLIP ViT-B/16 run frame by frame, Kinetics-400: the official K400 preset adapter12x384 and
# recipe (docs/methods.md; official script scripts/train_k400_clip_vit_b16_adapter12x384.sh; its README reports
# 82.2 top-1 for this setting). One adapter (width 384, depth-wise (3, 1, 1) conv, no nonlinearity) before the MLP
# of each of the 12 blocks: 12 x 592,512 = 7,110,144 trained parameters, plus the head (768 x 400 + 400 = 307,600).
_base_ = ['../_base_/st_adapter_clip-vit-b16.py']
work_dir = './work_dirs/st-adapter_clip-vit-b16_k400'

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/kinetics400/videos_train'  # mmaction2's Kinetics-400 layout (docs/datasets.md)
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
clip_weights = 'checkpoints/open_clip_ViT-B-16-quickgelu_openai.bin'  # see configs/_base_/st_adapter_clip-vit-b16.py
# Official: 3 GPUs x 64 = 192 clips per step, lr = 1e-3 x 192 / 256 = 7.5e-4. With another batch keep
# lr = base_lr x batch / 256 (below) or pass --auto-scale-lr.
num_gpus, videos_per_gpu, num_workers = 3, 64, 8
# ------------------------------------------------------------------------------------------------
base_lr, num_classes, num_epochs, warmup_epochs = 1e-3, 400, 12, 2
batch = num_gpus * videos_per_gpu

model = dict(
    backbone=dict(backbone=dict(pretrained=clip_weights),
                  prompt=dict(type='STAdapter', width=384, positions=('mlp',), kernel_size=(3, 1, 1))),
    cls_head=dict(num_classes=num_classes))
optim_wrapper = dict(optimizer=dict(lr=base_lr * batch / 256))
# Per step: linear warm-up over 2 epochs from ~0 (MMEngine's LinearLR needs a factor > 0), then half-cosine to 0.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=num_epochs, val_begin=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch)

# Sampling: 8 frames at stride 16 (dense). Train: short side rescaled to a random size in [224, 258] (the official
# scale_range 1.0-1.15 of 224), a random 224 crop, horizontal flip; bicubic. No RandAugment, mixup or erasing.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=16, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(224, 258), interpolation='bicubic'),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=16, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224), interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
# Test: official K400 views are 1 spatial (center) crop x 3 temporal clips, short side 224; softmax, then mean.
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=16, num_clips=3, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224), interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=videos_per_gpu, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file=ann_file_train, data_prefix=dict(video=data_root),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=videos_per_gpu, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root_val),
                 pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root_val),
                 pipeline=test_pipeline, test_mode=True))
