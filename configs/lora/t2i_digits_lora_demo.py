# The text-to-image CPU demo's LoRA baseline: PEFT LoRA r = 4 on to_q/to_k/to_v/to_out.0 of every attention of the
# frozen tiny digits model; everything else as configs/approx_prompt/t2i_digits_demo.py (the base:
# --cfg-options model.pretrained=<run folder>/base). lr: the demo's, from its sweep.
_base_ = ['../approx_prompt/t2i_digits_demo.py']

model = dict(prompt=None, lora=dict(r=4, target_modules=['to_q', 'to_k', 'to_v', 'to_out.0']))
optim_wrapper = dict(optimizer=dict(lr=1e-2))
