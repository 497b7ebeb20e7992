# Demo, stage 2 of 2, with ST-Adapter instead of Attention Prompt Tuning: the frozen stage-1 ViT
# (configs/apt/videomae_demo_pretrain.py) learns the "diagonal" motions (down-right / down-left / up-right / up-left)
# through adapters before attention and before the MLP of every block (the SSv2 preset's placement, since the task
# is about motion), at a small width. The official recipe (docs/methods.md §4) scaled down; deviations are marked.
_base_ = ['../_base_/apt_videomae_demo.py']
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)
work_dir = './work_dirs/st-adapter_videomae_demo'  # not work_dirs/videomae_demo, which the APT demo writes

demo_task = 'diagonal'
demo_root = 'data/demo_motion_diagonal'
# The frozen base: stage 1's final checkpoint (`python tools/train.py configs/apt/videomae_demo_pretrain.py`).
pretrained = 'work_dirs/videomae_demo_pretrain/epoch_30.pth'
batch_size = 16

model = dict(
    backbone=dict(
        backbone=dict(img_size=32, patch_size=8, embed_dims=64, depth=4, num_heads=4, num_frames=8),
        # 8 frames / tubelet 2 x (32 / 8)^2 -> a (4, 4, 4) token grid; width 32 instead of 384 for a width-64 ViT.
        prompt=dict(_delete_=True, type='STAdapter', width=32, positions=('attn', 'mlp'), kernel_size=(3, 1, 1)),
        pretrained=pretrained),
    # Official head: Dropout(0.5) then a linear layer initialised N(0, 0.02), bias 0; plain cross-entropy.
    cls_head=dict(num_classes=4, in_channels=64, init_std=0.02, label_smooth_eps=0.0, dropout_ratio=0.5))
# AdamW, weight decay 0.01 except on biases. Deviation: lr 1e-3 (16x the official 1e-3 x batch / 256 rule) because
# the demo trains for 120 steps, not 50 epochs of SSv2.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(_delete_=True, bias_decay_mult=0.0))
num_epochs = 20
train_cfg = dict(max_epochs=num_epochs, val_interval=num_epochs)
param_scheduler = [  # per step: 2 linear warm-up epochs from ~0, then half-cosine to 0 (official)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=num_epochs - 2, eta_min=0.0, by_epoch=True, begin=2, end=num_epochs,
         convert_to_iter_based=True),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(data_root=demo_root, task=demo_task))
val_dataloader = dict(dataset=dict(data_root=demo_root, task=demo_task))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=num_epochs, save_best=None, max_keep_ckpts=1),
                     logger=dict(interval=5))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
