# Demo, open_clip stage 1: train the tiny open_clip visual tower (with a linear head) fully on digits 0-4, to be
# frozen and prompt-tuned by vapt_clip_digits_demo.py.
_base_ = ['../_base_/vapt_clip_digits_demo.py']

digits = (0, 1, 2, 3, 4)
train_dataloader = dict(dataset=dict(digits=digits))
val_dataloader = dict(dataset=dict(digits=digits))
test_dataloader = val_dataloader
model = dict(pretrained=None, head='linear', classnames=None, full_finetune=True)
# Not the VAPT recipe: plain AdamW, every tensor decayed (no paramwise rule).
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05), paramwise_cfg=None)
