# VAPT, supervised ImageNet-21k ViT-B/16 (timm), VTAB-1k specialized tasks: the template. Copy it for a task and set
# the three settings below; the recipe is configs/_base_/vapt_{runtime,vtab,vit-b16}.py (docs/methods.md §3).
# Specialized tasks (folder in the VTAB-1k release: classes): patch_camelyon: 2, eurosat: 10, resisc45: 45,
# diabetic_retinopathy: 5.
_base_ = ['../_base_/vapt_vtab.py', '../_base_/vapt_vit-b16.py']

# ---- settings ---------------------------------------------------------------------------------------------------
data_root = 'data/vtab-1k/eurosat'  # holds train800val200.txt, test.txt and the images they list
num_classes = 10
# Google's original ViT-B/16 ImageNet-21k weights (JAX .npz, the VPT/VAPT backbone), or any timm state dict.
pretrained = 'checkpoints/imagenet21k_ViT-B_16.npz'
# ------------------------------------------------------------------------------------------------------------------
model = dict(num_classes=num_classes, pretrained=pretrained)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
