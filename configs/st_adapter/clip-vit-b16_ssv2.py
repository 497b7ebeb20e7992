# ST-Adapter on a frozen CLIP ViT-B/16 run frame by frame, Something-Something v2: the official SSv2 preset
# adapter24x384 and recipe (docs/methods.md; official script scripts/train_ssv2_clip_vit_b16_adapter24x384.sh; its
# README reports 66.9 top-1 for this setting). Adapters (width 384, depth-wise (3, 1, 1) conv, no nonlinearity)
# before attention and before the MLP of each of the 12 blocks: 24 x 592,512 = 14,220,288 trained parameters, plus
# the head (768 x 174 + 174 = 133,806).
_base_ = ['../_base_/st_adapter_clip-vit-b16.py']
work_dir = './work_dirs/st-adapter_clip-vit-b16_ssv2'

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/sthv2/videos'  # folder of the .webm/.mp4 videos
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'  # mmaction2 lists: "<video> <label>" per line
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
clip_weights = 'checkpoints/open_clip_ViT-B-16-quickgelu_openai.bin'  # see configs/_base_/st_adapter_clip-vit-b16.py
# Official: 4 GPUs x 64 = 256 clips per step, lr 1e-3. With another batch keep lr = base_lr x batch / 256.
num_gpus, videos_per_gpu, num_workers = 4, 64, 8
# ------------------------------------------------------------------------------------------------
base_lr, num_classes, num_epochs, warmup_epochs = 1e-3, 174, 50, 2
batch = num_gpus * videos_per_gpu

model = dict(
    backbone=dict(backbone=dict(pretrained=clip_weights),
                  prompt=dict(type='STAdapter', width=384, positions=('attn', 'mlp'), kernel_size=(3, 1, 1))),
    cls_head=dict(num_classes=num_classes))
optim_wrapper = dict(optimizer=dict(lr=base_lr * batch / 256))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=num_epochs, val_begin=1, val_interval=5)
param_scheduler = [  # per step: linear warm-up over 2 epochs from ~0, then half-cosine to 0
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch)

# Sampling: 8 frames, TSN-style (one random frame per uniform segment; segment midpoints at test): mmaction2's
# UniformSample. Train: RandAugment then random-resized crop (area 0.08-1, ratio 3/4-4/3) to 224, bicubic, no flip
# (SSv2 labels depend on left/right). Deviation: official RandAugment is timm's rand-m7-n4-mstd0.5-inc1;
# torchvision's is the closest: 4 ops, magnitude 7 of 10 -> bin 21 of 0..30 (31 bins), no magnitude noise (mstd).
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=8),
    dict(type='DecordDecode'),
    dict(type='TorchVisionWrapper', op='RandAugment', num_ops=4, magnitude=21),
    dict(type='RandomResizedCrop', area_range=(0.08, 1.0), aspect_ratio_range=(0.75, 1.3333)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False, interpolation='bicubic'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=8, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224), interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
# Test: official SSv2 views are 3 spatial crops x 1 temporal clip, short side 224; softmax, then mean.
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=8, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224), interpolation='bicubic'),
    dict(type='ThreeCrop', crop_size=224),
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
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=test_pipeline, test_mode=True))
