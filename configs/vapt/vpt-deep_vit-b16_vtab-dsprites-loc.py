# VPT-deep baseline for vapt_vit-b16_vtab-dsprites-loc.py: 10 learnable prompts per block, same recipe and data.
_base_ = ['./vapt_vit-b16_vtab-dsprites-loc.py']

model = dict(prompt=dict(_delete_=True, type='DeepPrompt', num_tokens=10, dropout=0.1))
