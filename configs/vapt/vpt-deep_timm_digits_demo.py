# Demo, stage 2 baseline: VPT-deep (8 prompts per block) on the frozen stage-1 ViT, digits 5-9.
_base_ = ['../_base_/vapt_digits_demo.py']

model = dict(prompt=dict(type='DeepPrompt', num_tokens=8))
optim_wrapper = dict(optimizer=dict(lr=0.25 * 32 / 256))  # base_lr 0.25 x batch 32 / 256, chosen on val200
