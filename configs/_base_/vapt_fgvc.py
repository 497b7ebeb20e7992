# FGVC data for the VAPT / VPT recipe (docs/methods.md §3): train = resize the short side to 256, random 224 crop,
# horizontal flip; test = resize 256, center crop 224; ImageNet mean/std (the model's data preprocessor).
# VPT's splits: <data_root>/{train.json, val.json, test.json} mapping "relative/path.jpg" to a label, paths under
# <data_root>/images. Class folders instead (<root>/train/<class>/*.jpg): use type='promptkit.ImageFolderDataset'
# with data_prefix=dict(img_path='train') and no ann_file.
_base_ = ['./vapt_runtime.py']

data_root = 'data/fgvc/CUB_200_2011'
num_workers = 8
# mmcv's Resize with keep_ratio fits the image inside (long, short) = (100000, 256): the short side becomes 256.
short_side = dict(type='Resize', scale=(100000, 256), keep_ratio=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    short_side,
    dict(type='RandomCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    short_side,
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackImageInputs'),
]
dataset = dict(type='promptkit.ImageListDataset', data_root=data_root, data_prefix=dict(img_path='images'))
train_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(dataset, ann_file='train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size={{_base_.batch_size}}, num_workers=num_workers, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='val.json', pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(val_dataloader, dataset=dict(dataset, ann_file='test.json', pipeline=test_pipeline,
                                                    test_mode=True))
train_cfg = dict(val_interval=10)
default_hooks = dict(checkpoint=dict(save_best='acc/top1', rule='greater'))
