# sd15_dreambooth.py on Stable Diffusion XL (140 sites, widths 640/1280): two text encoders, the pooled
# text_embeds and the (original size, crop, target size) time_ids go to the UNet in the loss and in sampling.
# 1024 px; the frozen parts in float16 (diffusers' --mixed_precision fp16), trained tensors in float32: run with --amp.
# SDXL's own VAE overflows in float16: give vae= the folder of an fp16-safe SDXL VAE, or drop frozen_dtype.
_base_ = ['./sd15_dreambooth.py']

pretrained = 'checkpoints/stable-diffusion-xl-base-1.0'
resolution = 1024
model = dict(pretrained=pretrained, frozen_dtype='float16')
train_dataloader = dict(dataset=dict(resolution=resolution))
