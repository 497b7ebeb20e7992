# VAPT, supervised ImageNet-21k ViT-B/16 (timm), FGVC CUB-200-2011 with VPT's train/val/test json splits:
# resize 256 + random crop 224 + flip for training, resize 256 + center crop 224 for testing (docs/methods.md §3).
# Validation on val.json every 10 epochs keeps the best checkpoint; test with tools/test.py on test.json.
_base_ = ['../_base_/vapt_fgvc.py', '../_base_/vapt_vit-b16.py']

# ---- settings ---------------------------------------------------------------------------------------------------
data_root = 'data/fgvc/CUB_200_2011'  # holds train.json, val.json, test.json and images/<class>/*.jpg
num_classes = 200
pretrained = 'checkpoints/imagenet21k_ViT-B_16.npz'
# ------------------------------------------------------------------------------------------------------------------
model = dict(num_classes=num_classes, pretrained=pretrained)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
