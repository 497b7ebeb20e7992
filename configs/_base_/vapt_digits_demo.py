# The CPU image demo's data and backbone (tools/image_demo.py runs it): scikit-learn's handwritten digits
# (promptkit.datasets.digits; real 8x8 scans upscaled to 32x32, split 800/200/797 like VTAB-1k, written under
# data/digits the first time) and a tiny timm ViT (32x32 input, 4x4 patches -> 8x8 = 64 tokens, width 64,
# 4 blocks). Stage 1 trains it fully on digits 0-4; stage 2 freezes it and tunes on the new digits 5-9.
# Recipe: the VAPT one (SGD, 10 % warm-up, cosine per epoch, VTAB-style resize only) scaled to 30 epochs.
_base_ = ['./vapt_runtime.py']

digits_root = 'data/digits'
digits = (5, 6, 7, 8, 9)  # stage 2's task; chance is 20 %
img_size = 32
batch_size = 32
# The variants' lr were picked like the official grid, in miniature: train on train800, validate on val200, base_lr
# from {0.05, 0.25, 1, 5, 10} (docs/image_tuning.md has the grid); linear probe 5, VPT-deep 0.25, VAPT 1.
base_lr = 5.0
num_epochs, warmup_epochs = 30, 3

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,  # 2 CPU cores: load in-process
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='promptkit.DigitsDataset', data_root=digits_root, split='train800val200', digits=digits,
                 pipeline=pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='promptkit.DigitsDataset', data_root=digits_root, split='test', digits=digits,
                 pipeline=pipeline, test_mode=True))
test_dataloader = val_dataloader

model = dict(
    type='promptkit.TimmClassifier',
    model_name='vit_tiny_patch16_224', img_size=img_size, patch_size=4, embed_dim=64, depth=4, num_heads=4,
    num_classes=len(digits),
    pretrained='work_dirs/timm_digits-pretrain_demo/epoch_30.pth',  # stage 1's final checkpoint
    load_head=False)  # same class count, new classes: a fresh head

optim_wrapper = dict(optimizer=dict(lr=base_lr * batch_size / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs),
    dict(type='CosineAnnealingLR', T_max=num_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=num_epochs),
]
train_cfg = dict(max_epochs=num_epochs, val_interval=num_epochs)
default_hooks = dict(checkpoint=dict(interval=num_epochs), logger=dict(interval=10))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
