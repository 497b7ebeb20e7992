# The text-to-image CPU demo's K/V prompts (Attention Prompt Tuning's form, T = 16 = the ApproxPrompt demo's M)
# on every attn1 + attn2 of the frozen tiny digits model; everything else as configs/approx_prompt/t2i_digits_demo.py
# (the base: --cfg-options model.pretrained=<run folder>/base). lr: the demo's, from its sweep.
_base_ = ['../approx_prompt/t2i_digits_demo.py']

model = dict(prompt=dict(_delete_=True, type='AttentionPrompt', num_tokens=16, train_head_norm=False))
optim_wrapper = dict(optimizer=dict(lr=3e-2))
