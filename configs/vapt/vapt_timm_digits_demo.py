# Demo, stage 2: VAPT on the frozen stage-1 ViT (timm_digits-pretrain_demo.py) for the new digits 5-9; trains
# the prompt modules and the new head only.
_base_ = ['../_base_/vapt_digits_demo.py']

model = dict(prompt=dict(type='AdaptivePrompt', num_tokens=8, hidden_dim=8))
optim_wrapper = dict(optimizer=dict(lr=1.0 * 32 / 256))  # base_lr 1.0 x batch 32 / 256, chosen on val200
