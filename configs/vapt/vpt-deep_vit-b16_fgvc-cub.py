# VPT-deep baseline for vapt_vit-b16_fgvc-cub.py: 10 learnable prompts per block, same recipe and data.
_base_ = ['./vapt_vit-b16_fgvc-cub.py']

model = dict(prompt=dict(_delete_=True, type='DeepPrompt', num_tokens=10, dropout=0.1))
