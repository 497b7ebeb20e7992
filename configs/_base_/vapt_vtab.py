# VTAB-1k data for the VAPT / VPT recipe (docs/methods.md §3): images resized to 224x224, no augmentation,
# ImageNet mean/std (set by the model's data preprocessor). Lists as in the common VTAB-1k release:
# <data_root>/{train800.txt, val200.txt, train800val200.txt, test.txt}, "relative/path.jpg label" per line.
# Final runs (as here) train on train800val200 and test on test; for the lr/wd grid, train on train800.txt and
# validate on val200.txt. Validation runs once, at the end, so no checkpoint is chosen on the test set.
_base_ = ['./vapt_runtime.py']

data_root = 'data/vtab-1k/cifar'
img_size = 224
num_workers = 8
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='promptkit.ImageListDataset', data_root=data_root, ann_file='train800val200.txt',
                 pipeline=pipeline))
val_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='promptkit.ImageListDataset', data_root=data_root, ann_file='test.txt', pipeline=pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
