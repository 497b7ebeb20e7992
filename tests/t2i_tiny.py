"""Tiny diffusers / transformers components for the text-to-image tests: built from configs, offline, in seconds."""
from __future__ import annotations

import json
import os

import torch

#: A UNet2DConditionModel with two widths (32, 64): 8 attention sites (4 self, 4 cross), 4x16x16 latents.
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                 down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
                 up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D'), cross_attention_dim=32,
                 attention_head_dim=4, norm_num_groups=8)
#: CLIPTextModel over the byte-level tokenizer below (514 tokens), width 32.
TINY_TEXT = dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=16, bos_token_id=512, eos_token_id=513,
                 pad_token_id=513, projection_dim=32)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=('DownEncoderBlock2D', 'DownEncoderBlock2D'),
                up_block_types=('UpDecoderBlock2D', 'UpDecoderBlock2D'), norm_num_groups=4, sample_size=32)


def tiny_tokenizer_files(folder: str, max_length: int = 16) -> str:
    """Write a CLIP tokenizer folder with a byte-level vocabulary and no merges (every word splits into bytes)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + '</w>' for c in chars] + ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(folder, 'raw')
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(raw, 'vocab.json'), 'w') as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(os.path.join(raw, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n')
    tok = CLIPTokenizer(os.path.join(raw, 'vocab.json'), os.path.join(raw, 'merges.txt'), model_max_length=max_length)
    tok.save_pretrained(folder)
    return folder


def tiny_unet(seed: int = 0, **overrides):
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(**{**TINY_UNET, **overrides})


def tiny_sd_folder(folder: str, seed: int = 0, vae: bool = True, unet: dict | None = None) -> str:
    """A Stable-Diffusion-format folder written by diffusers' own ``save_pretrained``."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = tiny_tokenizer_files(os.path.join(folder, '_tok'))
    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**TINY_VAE) if vae else None, text_encoder=text,
        tokenizer=CLIPTokenizer.from_pretrained(tok_dir), unet=tiny_unet(seed, **(unet or {})),
        scheduler=DDPMScheduler(num_train_timesteps=1000, beta_schedule='scaled_linear', beta_start=0.00085,
                                beta_end=0.012, clip_sample=False, steps_offset=1),
        safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def tiny_sdxl_folder(folder: str, seed: int = 0, unet: dict | None = None) -> str:
    """An SDXL-format folder (two text encoders, text_time conditioning) written by diffusers' save_pretrained."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tiny_tokenizer_files(os.path.join(folder, '_tok')))
    torch.manual_seed(seed)
    sdxl = dict(cross_attention_dim=64, addition_embed_type='text_time', addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=32 + 6 * 8)
    unet = tiny_unet(seed, **{**sdxl, **(unet or {})})
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**TINY_VAE), text_encoder=CLIPTextModel(CLIPTextConfig(**TINY_TEXT)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**TINY_TEXT)), tokenizer=tok, tokenizer_2=tok,
        unet=unet, scheduler=EulerDiscreteScheduler(beta_schedule='scaled_linear', beta_start=0.00085,
                                                    beta_end=0.012, steps_offset=1))
    pipe.save_pretrained(folder)
    return folder
