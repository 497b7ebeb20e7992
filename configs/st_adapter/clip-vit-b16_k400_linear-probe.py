# Baseline on the same frozen CLIP ViT-B/16 frame tower and K400 recipe: a frame-averaged linear probe (no adapters;
# frame-averaged class tokens, CLIP's frozen ln_post, Dropout(0.5), linear head), trains the head only.
_base_ = ['./clip-vit-b16_k400.py']
work_dir = './work_dirs/linear-probe_clip-vit-b16_k400'
model = dict(backbone=dict(prompt=None))
