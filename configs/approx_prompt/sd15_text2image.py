# Text-to-image fine-tuning on a captioned image folder (diffusers' imagefolder layout: data_root/metadata.jsonl
# with {"file_name": ..., "text": ...} per line) with Approximated Prompt Tuning in the frozen SD 1.5 UNet.
# Recipe after diffusers' train_text_to_image_lora.py: 512 px, random flips, 10% caption dropout for guidance,
# Min-SNR gamma 5; lr raised for prompts.
_base_ = ['../_base_/t2i_runtime.py']

pretrained = 'checkpoints/stable-diffusion-v1-5'
data_root = 'data/captioned'
resolution = 512

model = dict(
    type='PromptedTextToImage', pretrained=pretrained,
    prompt=dict(type='ApproxPrompt', num_tokens=16, rank=4, kinds=('self', 'cross')),
    cfg_dropout=0.1, snr_gamma=5.0, gradient_checkpointing=True,
    sampler=dict(type='DDIMScheduler', num_inference_steps=25, guidance_scale=7.5))
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CaptionedImageFolder', data_root=data_root, resolution=resolution, center_crop=True,
                 random_flip=True))
max_iters = 5000
train_cfg = dict(max_iters=max_iters)
