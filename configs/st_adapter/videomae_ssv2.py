# ST-Adapter, SSv2 preset adapter24x384 (docs/methods.md §4; official script
# scripts/train_ssv2_clip_vit_b16_adapter24x384.sh) on the frozen VideoMAE ViT-B (SSv2 pre-trained, 2400 epochs)
# of configs/apt/videomae_ssv2.py, Something-Something V2.
# Adapters (width 384, depth-wise (3, 1, 1) conv, no nonlinearity) before attention and before the MLP of all 12
# blocks: 24 x 592,512 = 14,220,288 trained parameters, plus the head (768 x 174 + 174).
# Deliberate deviations from the official recipe, each marked "Deviation" below:
# - Host: the official backbone is CLIP ViT-B/16 run frame by frame (8 frames x 197 tokens, class token, no
#   cross-frame attention, frozen ln_post); here it is mmaction2's VideoMAE ViT-B (16 frames, tubelet 2 ->
#   8 x 14 x 14 = 1568 tokens, joint space-time attention, no class token, mean pooling + frozen fc_norm), so
#   results compare with APT on the same frozen base, not with the paper's CLIP numbers. The adapters still see
#   8 time steps, as in the official 8-frame setting.
_base_ = ['../_base_/apt_videomae_vit-b.py']
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)
work_dir = './work_dirs/st-adapter_videomae_ssv2'  # not work_dirs/videomae_ssv2, which the APT config writes

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/sthv2/videos'  # folder of the .webm/.mp4 videos
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'  # mmaction2 lists: "<video> <label>" per line
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
pretrained = 'checkpoints/videomae_vit-b_ssv2_pretrain_2400e.pth'  # VideoMAE *pre-training* checkpoint
# Official: 4 GPUs x 64 = 256 videos per step. Same total here; at 1568 tokens a clip, 32 clips need roughly
# 30 GiB of activations per GPU in fp32 (estimate, not measured). Train with `tools/train.py ... --amp`: the
# official code runs under fp16 autocast (it also casts the frozen weights to fp16). With another batch, keep
# lr = base_lr x batch / 256 (below) or pass --auto-scale-lr.
num_gpus, videos_per_gpu, num_workers = 8, 32, 8
# ------------------------------------------------------------------------------------------------
base_lr, num_classes, num_epochs, warmup_epochs = 1e-3, 174, 50, 2
batch = num_gpus * videos_per_gpu

model = dict(
    backbone=dict(
        pretrained=pretrained,
        prompt=dict(_delete_=True, type='STAdapter', width=384, positions=('attn', 'mlp'), kernel_size=(3, 1, 1),
                    activation=None, layers='all')),
    # Official head: Dropout(0.5), then a new linear layer initialised N(0, 0.02), bias 0; plain cross-entropy
    # (no label smoothing). Softmax per view, then the mean (average_clips='prob', from mmaction2's base).
    cls_head=dict(num_classes=num_classes, init_std=0.02, label_smooth_eps=0.0, dropout_ratio=0.5))

# AdamW (default betas), lr 1e-3 per 256 videos, weight decay 0.01 except on biases (official: no decay on any
# parameter whose name contains ".bias"; nothing else 1-D is trained). No gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * batch / 256, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(_delete_=True, bias_decay_mult=0.0),
    clip_grad=None)
# Per step: linear warm-up over 2 epochs from ~0 (MMEngine's LinearLR needs a factor > 0), then half-cosine to 0.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=num_epochs, val_begin=1, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch)

# Sampling: official SSv2 uses TSN-style sampling (one random frame per uniform segment; segment midpoints at
# test), which is mmaction2's UniformSample; 16 frames for the 16-frame VideoMAE host (deviation: 8 for CLIP).
# Train: RandAugment then random-resized crop (area 0.08-1, ratio 3/4-4/3) to 224, bicubic, no flip (SSv2 labels
# depend on left/right). Deviation: official RandAugment is timm's rand-m7-n4-mstd0.5-inc1; torchvision's is the
# closest: 4 ops, magnitude 7 of 10 -> bin 21 of 0..30 (31 bins), no magnitude noise (mstd), torchvision's
# posterize/solarize already grow with the magnitude (inc1). Deviation: frames are first resized to short side 256,
# as in the host's (APT/VideoMAE) pipeline; the crop is relative, so only the resampling differs.
# No repeated augmentation (unlike configs/apt/videomae_ssv2.py): the official ST-Adapter loader draws one clip
# per video; no mixup, no random erasing (present in the official repo but unused).
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='TorchVisionWrapper', op='RandAugment', num_ops=4, magnitude=21),
    dict(type='RandomResizedCrop', area_range=(0.08, 1.0), aspect_ratio_range=(0.75, 1.3333)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False, interpolation='bicubic'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224), interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
# Test: official SSv2 views are 3 spatial crops x 1 temporal clip, short side 224.
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16, num_clips=1, test_mode=True),
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
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
