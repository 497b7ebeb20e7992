# Image-to-video demo (tools/frames_demo.py, `make frames-demo`): ST-Adapter on a frozen *image* tower run frame by
# frame (promptkit.FrameTower), on the generated motion clips, where the class is the direction of motion.
# The tower: the tiny timm ViT of the image demo (configs/vapt/timm_digits-pretrain_demo.py: 32x32 input, 4x4
# patches -> 8x8 = 64 patch tokens + a class token, width 64, 4 blocks), pre-trained on single images of a
# different task (handwritten digits 0-4) and frozen. It has never seen motion, nor these shapes.
# Adapters before attention and before the MLP of all 4 blocks (the SSv2 preset's placement: the task is motion),
# width 32 instead of 384 for a width-64 tower, kernel (3, 1, 1). Per-frame class tokens averaged over the 8 frames,
# the tower's frozen final norm, then Dropout(0.5) and a linear head initialised N(0, 0.02), as in the official code.
# The official recipe (AdamW, weight decay 0.01 except biases, per-step warm-up then cosine) scaled down; deviations
# are marked. configs/st_adapter/frames_demo_linear-probe.py is the frame-averaged linear probe on the same tower.
_base_ = ['../_base_/apt_videomae_demo.py']  # the demo's motion data and pipelines (8 frames, stride 2, 32x32)
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)
work_dir = './work_dirs/st-adapter_frames_demo'

demo_task = 'axis'  # right / left / down / up
demo_root = 'data/demo_motion_axis'
# The frozen image tower: the image demo's 30-epoch digits pre-training, run by tools/frames_demo.py
# (`tools/train.py configs/vapt/timm_digits-pretrain_demo.py --work-dir work_dirs/frames_demo_tower`); a promptkit
# checkpoint, its head is dropped. The image demo's own checkpoint (work_dirs/timm_digits-pretrain_demo) is the same.
# A 6-epoch tower (47 % on digits) was too weak: ST-Adapter's loss did not fall from ln 4 (docs/image_to_video.md).
tower_weights = 'work_dirs/frames_demo_tower/epoch_30.pth'
batch_size = 16

model = dict(
    backbone=dict(
        _delete_=True,
        type='promptkit.PromptedBackbone',
        backbone=dict(type='promptkit.FrameTower', tower='timm', model_name='vit_tiny_patch16_224', img_size=32,
                      patch_size=4, embed_dim=64, depth=4, num_heads=4, pretrained=tower_weights),
        prompt=dict(type='STAdapter', width=32, positions=('attn', 'mlp'), kernel_size=(3, 1, 1))),
    cls_head=dict(num_classes=4, in_channels=64, init_std=0.02, label_smooth_eps=0.0, dropout_ratio=0.5),
    # The tower was trained on ImageNet mean/std-normalised RGB (configs/_base_/vapt_digits_demo.py); decord
    # decodes RGB.
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCTHW'))
# AdamW, weight decay 0.01 except on biases. Deviation: lr 2e-2 (320x the official 1e-3 x batch / 256 rule) because
# the demo trains for 120 steps (20 epochs of 6), not 12-50 epochs of Kinetics / SSv2; at 3e-3 for 90 steps the
# loss stayed at ln 4.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(_delete_=True, bias_decay_mult=0.0),
    clip_grad=None)
num_epochs, warmup_epochs = 20, 2
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=num_epochs, val_begin=1, val_interval=num_epochs)
param_scheduler = [  # per step: linear warm-up from ~0, then half-cosine to 0 (official)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
train_dataloader = dict(batch_size=batch_size, dataset=dict(data_root=demo_root, task=demo_task))
val_dataloader = dict(dataset=dict(data_root=demo_root, task=demo_task))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=num_epochs, save_best=None, max_keep_ckpts=1),
                     logger=dict(interval=5))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
