# Linear-probe baseline for vapt_vit-b16_vtab-cifar100.py: the head alone on the frozen ViT-B/16.
_base_ = ['./vapt_vit-b16_vtab-cifar100.py']

model = dict(prompt=None)
