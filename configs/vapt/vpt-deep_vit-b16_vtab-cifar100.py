# VPT-deep baseline for vapt_vit-b16_vtab-cifar100.py: 10 learnable prompts per block (92,160 parameters), same
# recipe and data. VPT picks the prompt count per task; 10 matches VAPT's.
_base_ = ['./vapt_vit-b16_vtab-cifar100.py']

model = dict(prompt=dict(_delete_=True, type='DeepPrompt', num_tokens=10, dropout=0.1))
