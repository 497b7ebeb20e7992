# The LoRA baseline of sd15_dreambooth.py through the same wrapper: PEFT LoRA r = 4 on to_q/to_k/to_v/to_out.0 of
# every attention (diffusers' train_dreambooth_lora.py targets, alpha = r, Gaussian init), lr 1e-4 as there.
_base_ = ['../approx_prompt/sd15_dreambooth.py']

model = dict(prompt=None, lora=dict(r=4, target_modules=['to_q', 'to_k', 'to_v', 'to_out.0']))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
