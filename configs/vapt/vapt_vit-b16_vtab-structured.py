# VAPT, supervised ImageNet-21k ViT-B/16 (timm), VTAB-1k structured tasks: the template. Copy it for a task and set
# the three settings below; the recipe is configs/_base_/vapt_{runtime,vtab,vit-b16}.py (docs/methods.md §3).
# Structured tasks (folder in the VTAB-1k release: classes): clevr_count: 8, clevr_dist: 6, dmlab: 6, kitti: 4,
# dsprites_loc: 16, dsprites_ori: 16, smallnorb_azi: 18, smallnorb_ele: 9.
_base_ = ['../_base_/vapt_vtab.py', '../_base_/vapt_vit-b16.py']

# ---- settings ---------------------------------------------------------------------------------------------------
data_root = 'data/vtab-1k/clevr_count'  # holds train800val200.txt, test.txt and the images they list
num_classes = 8
# Google's original ViT-B/16 ImageNet-21k weights (JAX .npz, the VPT/VAPT backbone), or any timm state dict.
pretrained = 'checkpoints/imagenet21k_ViT-B_16.npz'
# ------------------------------------------------------------------------------------------------------------------
model = dict(num_classes=num_classes, pretrained=pretrained)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
