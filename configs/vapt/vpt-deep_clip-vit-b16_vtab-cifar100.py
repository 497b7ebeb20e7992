# VPT-deep baseline for vapt_clip-vit-b16_vtab-cifar100.py: 10 learnable prompts per block of the open_clip tower.
_base_ = ['./vapt_clip-vit-b16_vtab-cifar100.py']

model = dict(prompt=dict(_delete_=True, type='DeepPrompt', num_tokens=10, dropout=0.1))
