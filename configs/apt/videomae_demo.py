# Demo, stage 2 of 2: Attention Prompt Tuning of the frozen stage-1 ViT on a new task, the "diagonal" motions
# (down-right / down-left / up-right / up-left), with the official APT recipe scaled down: prompts + head +
# fc_norm trained, everything else frozen. `python tools/demo.py` runs both stages and the test.
_base_ = ['../_base_/apt_videomae_demo.py']

demo_task = 'diagonal'
demo_root = 'data/demo_motion_diagonal'
# The frozen base: stage 1's final checkpoint (tools/demo.py makes it).
pretrained = 'work_dirs/videomae_demo_pretrain/epoch_30.pth'

model = dict(
    backbone=dict(
        backbone=dict(img_size=32, patch_size=8, embed_dims=64, depth=4, num_heads=4, num_frames=8),
        prompt=dict(num_tokens=8), pretrained=pretrained),
    cls_head=dict(num_classes=4, in_channels=64))
optim_wrapper = dict(optimizer=dict(lr=0.05 * 16 / 256 * 4))
num_epochs = 20
train_cfg = dict(max_epochs=num_epochs, val_interval=num_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - 2, eta_min=1e-6, by_epoch=True, begin=2, end=num_epochs,
         convert_to_iter_based=True),
]
train_dataloader = dict(dataset=dict(data_root=demo_root, task=demo_task))
val_dataloader = dict(dataset=dict(data_root=demo_root, task=demo_task))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=num_epochs, save_best=None, max_keep_ckpts=1),
                     logger=dict(interval=5))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
