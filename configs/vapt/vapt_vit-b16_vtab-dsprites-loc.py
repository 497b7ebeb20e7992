# VAPT, supervised ImageNet-21k ViT-B/16 (timm), VTAB-1k dSprites location (structured, 16 x-position bins).
_base_ = ['./vapt_vit-b16_vtab-structured.py']

# ---- settings ---------------------------------------------------------------------------------------------------
data_root = 'data/vtab-1k/dsprites_loc'
num_classes = 16
pretrained = 'checkpoints/imagenet21k_ViT-B_16.npz'
# ------------------------------------------------------------------------------------------------------------------
model = dict(num_classes=num_classes, pretrained=pretrained)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
