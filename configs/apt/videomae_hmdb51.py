# Attention Prompt Tuning, VideoMAE ViT-B (Kinetics-400 pre-trained), HMDB51: the UCF101 recipe with
# official script hmdb51 ViT-B viu2: 8 GPUs x 8 videos, T = 400, 100 epochs, test 10 clips x 3 crops.
# (viu3: 5 x 8 videos, T = 100.)
_base_ = ['./videomae_ucf101.py']

# ---------------------------------------------------------------- settings to edit -------------
data_root = 'data/hmdb51/videos'
ann_file_train = 'data/hmdb51/hmdb51_train_split_1_videos.txt'
ann_file_val = 'data/hmdb51/hmdb51_val_split_1_videos.txt'
pretrained = 'checkpoints/videomae_vit-b_k400_pretrain_1600e.pth'
# ------------------------------------------------------------------------------------------------
num_tokens, num_classes, num_epochs, test_clips = 400, 51, 100, 10

model = dict(backbone=dict(pretrained=pretrained, prompt=dict(num_tokens=num_tokens)),
             cls_head=dict(num_classes=num_classes))
train_cfg = dict(max_epochs=num_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - 10, eta_min=1e-6 * 64 / 256, by_epoch=True, begin=10,
         end=num_epochs, convert_to_iter_based=True),
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
train_dataloader = dict(dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root)))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root),
                                    pipeline=test_pipeline))
