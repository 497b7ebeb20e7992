# Demo, stage 1 of 2: make a small "pre-trained" VideoMAE-shaped ViT to prompt-tune later. A tiny ViT
# (32x32 frames, 8 frames, 8x8 patches, tubelet 2 -> 64 tokens, width 64, 4 blocks) is fully trained from
# scratch on the "axis" motions (right / left / down / up). Runs on CPU in about a minute.
_base_ = ['../_base_/apt_videomae_demo.py']

model = dict(
    backbone=dict(
        backbone=dict(img_size=32, patch_size=8, embed_dims=64, depth=4, num_heads=4, num_frames=8),
        prompt=None, full_finetune=True),
    cls_head=dict(num_classes=4, in_channels=64, init_std=0.02, label_smooth_eps=0.0))
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
num_epochs = 30
train_cfg = dict(max_epochs=num_epochs, val_interval=num_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=3, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - 3, eta_min=1e-5, by_epoch=True, begin=3, end=num_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=num_epochs, save_best=None, max_keep_ckpts=1),
                     logger=dict(interval=5))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
