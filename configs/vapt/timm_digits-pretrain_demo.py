# Demo, stage 1: make the "pre-trained" tiny timm ViT that the other *_timm_digits_demo.py configs freeze and tune.
# Full training from scratch on digits 0-4 (AdamW), no prompts. About half a minute on 2 CPU cores.
_base_ = ['../_base_/vapt_digits_demo.py']

digits = (0, 1, 2, 3, 4)
train_dataloader = dict(dataset=dict(digits=digits))
val_dataloader = dict(dataset=dict(digits=digits))
test_dataloader = val_dataloader
model = dict(num_classes=len(digits), pretrained=None, prompt=None, full_finetune=True)
# Not the VAPT recipe: plain AdamW, every tensor decayed (no paramwise rule).
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05), paramwise_cfg=None)
