# Demo, open_clip stage 2: VAPT on the frozen stage-1 tower (clip_digits-pretrain_demo.py) for the new digits
# 5-9, with a zero-shot-initialised head; the text tower is dropped after building the head.
_base_ = ['../_base_/vapt_clip_digits_demo.py']

model = dict(prompt=dict(type='AdaptivePrompt', num_tokens=8, hidden_dim=8))
optim_wrapper = dict(optimizer=dict(lr=1.0 * 32 / 256))  # the timm VAPT demo's lr, not tuned for open_clip
