# Baseline on the APT SSv2 recipe: VPT-deep, the same number of prompt tokens (2) inserted into the residual
# stream of every block instead of appended to keys/values; trains prompts + head (VPT leaves fc_norm frozen).
_base_ = ['./videomae_ssv2.py']
model = dict(backbone=dict(prompt=dict(_delete_=True, type='DeepPrompt', num_tokens=2, deep=True, dropout=0.1)))
