"""``PromptedTextToImage``: a diffusers text-to-image model (UNet, text encoder, tokenizer, optional VAE, noise
scheduler) as an MMEngine model, its UNet frozen with a prompt strategy, a PEFT LoRA or neither attached.

Training computes the denoising loss of diffusers' training examples (epsilon or v-prediction, caption dropout for
classifier-free guidance, Min-SNR weighting, noise offset, DreamBooth prior preservation, SDXL micro-conditioning);
validation and testing sample with a diffusers scheduler and classifier-free guidance. ``to_pipeline()`` gives a
diffusers pipeline sharing the prompted UNet.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
import os.path as osp
import random
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from ..registry import MODELS
from ..weights.diffusers import load_components
from .prompted_backbone import PromptedWrapperMixin, attach_prompts

__all__ = ['PromptedTextToImage', 'PixelTextToImagePipeline', 'base_fingerprints', 'denoise',  # noqa: F822 (lazy)
           'load_components']

def _build_scheduler(cfg: dict | Any | None, base_config: dict | None = None):
    """A diffusers scheduler from ``dict(type='DDPMScheduler', **kwargs)`` (over ``base_config``), or as given."""
    import diffusers
    if cfg is not None and not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg or {})
    kind = cfg.pop('type', 'DDPMScheduler')
    klass = getattr(diffusers, kind, None)
    if klass is None or not hasattr(klass, 'from_config'):
        raise KeyError(f'scheduler type {kind!r} is not a diffusers scheduler (e.g. DDPMScheduler, DDIMScheduler, '
                       'EulerDiscreteScheduler, DPMSolverMultistepScheduler)')
    return klass.from_config({**dict(base_config or {}), **cfg})


def _module_fingerprint(module: nn.Module | None) -> str | None:
    """Fingerprint of a module's base weights: adapter layers (PEFT LoRA) left out, PEFT's ``base_layer`` names
    mapped back, values in float16 so a half-precision pipeline of the same weights matches."""
    if module is None:
        return None
    from ..artifacts import fingerprint
    state = {n.replace('.base_layer', ''): p.detach().to(torch.float16) for n, p in module.named_parameters()
             if 'lora_' not in n}
    return fingerprint(state)


def base_fingerprints(unet: nn.Module, text_encoder: nn.Module, text_encoder_2: nn.Module | None = None) -> dict:
    """The fingerprints a text-to-image prompt artifact is bound to: the frozen UNet and text encoder(s)."""
    out = dict(unet=_module_fingerprint(unet), text_encoder=_module_fingerprint(text_encoder))
    if text_encoder_2 is not None:
        out['text_encoder_2'] = _module_fingerprint(text_encoder_2)
    return out


def encode_text(tokenizers: Sequence, text_encoders: Sequence[nn.Module], captions: Sequence[str],
                device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Text states for the UNet: ``(B, L, D)`` and, with two encoders (SDXL), the pooled ``(B, D2)``.

    One encoder (SD 1.x/2.x): its last hidden state. Two (SDXL): the penultimate hidden states of both,
    concatenated on the feature axis, and the second encoder's projected pooled output, as SDXL was trained.
    """
    if len(text_encoders) == 1:
        tok = tokenizers[0]
        ids = tok(list(captions), padding='max_length', max_length=tok.model_max_length, truncation=True,
                  return_tensors='pt').input_ids.to(device)
        return text_encoders[0](ids)[0], None
    states, pooled = [], None
    for tok, enc in zip(tokenizers, text_encoders):
        ids = tok(list(captions), padding='max_length', max_length=tok.model_max_length, truncation=True,
                  return_tensors='pt').input_ids.to(device)
        out = enc(ids, output_hidden_states=True)
        pooled = out[0]  # CLIPTextModelWithProjection: text_embeds (B, D2)
        states.append(out.hidden_states[-2])
    return torch.cat(states, dim=-1), pooled


def sdxl_time_ids(height: int, width: int, batch: int, device, dtype, original=None, crop=(0, 0)) -> Tensor:
    """SDXL's micro-conditioning ``(original_h, original_w, crop_top, crop_left, target_h, target_w)``, (B, 6)."""
    original = original or (height, width)
    return torch.tensor([[*original, *crop, height, width]], device=device, dtype=dtype).expand(batch, 6)


@torch.no_grad()
def denoise(unet: nn.Module, scheduler, cond: Tensor, uncond: Tensor | None, shape: Sequence[int],
            steps: int, guidance: float, generator: torch.Generator | None = None,
            added_cond: dict | None = None, added_uncond: dict | None = None) -> Tensor:
    """The sampling loop: a diffusers scheduler's ``set_timesteps`` / ``scale_model_input`` / ``step`` with
    classifier-free guidance ``eps_u + g·(eps_c − eps_u)``. Returns the final sample (latents or pixels).

    Written here because no stock diffusers pipeline samples a VAE-less text-conditioned ``UNet2DConditionModel``
    (``StableDiffusionPipeline`` needs a VAE); with a VAE, ``to_pipeline()`` returns diffusers' own pipeline.
    """
    device = cond.device
    scheduler.set_timesteps(steps, device=device)
    x = torch.randn(tuple(shape), generator=generator, device='cpu').to(device, cond.dtype)
    x = x * scheduler.init_noise_sigma
    cfg = uncond is not None and guidance != 1.0
    ctx = torch.cat([uncond, cond]) if cfg else cond
    added = None
    if added_cond is not None:
        added = {k: torch.cat([added_uncond[k], v]) for k, v in added_cond.items()} if cfg else added_cond
    for t in scheduler.timesteps:
        inp = torch.cat([x, x]) if cfg else x
        inp = scheduler.scale_model_input(inp, t)
        pred = unet(inp, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
        if cfg:
            pred_u, pred_c = pred.chunk(2)
            pred = pred_u + guidance * (pred_c - pred_u)
        x = scheduler.step(pred, t, x, generator=generator).prev_sample
    return x


def _pixel_pipeline_class():
    from diffusers import DiffusionPipeline
    from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

    class PixelTextToImagePipeline(DiffusionPipeline):
        """Text-to-image sampling for a pixel-space (VAE-less) ``UNet2DConditionModel``: the smallest pipeline
        over :func:`denoise`; ``save_pretrained`` / ``from_pretrained`` work as for any ``DiffusionPipeline``."""

        model_cpu_offload_seq = 'text_encoder->unet'

        def __init__(self, unet, text_encoder, tokenizer, scheduler) -> None:
            super().__init__()
            self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

        @torch.no_grad()
        def __call__(self, prompt: str | list[str], height: int | None = None, width: int | None = None,
                     num_inference_steps: int = 25, guidance_scale: float = 7.5, negative_prompt: str = '',
                     num_images_per_prompt: int = 1, generator: torch.Generator | None = None,
                     output_type: str = 'pil'):
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
            size = self.unet.config.sample_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            height, width = height or size[0], width or size[1]
            device = self.unet.device
            cond, _ = encode_text([self.tokenizer], [self.text_encoder], prompts, device)
            uncond, _ = encode_text([self.tokenizer], [self.text_encoder], [negative_prompt] * len(prompts), device)
            x = denoise(self.unet, self.scheduler, cond.to(self.unet.dtype), uncond.to(self.unet.dtype),
                        (len(prompts), self.unet.config.in_channels, height, width), num_inference_steps,
                        guidance_scale, generator)
            images = (x / 2 + 0.5).clamp(0, 1).float()
            if output_type == 'pt':
                return ImagePipelineOutput(images=images)
            images = images.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
            if output_type == 'pil':
                images = self.numpy_to_pil(images)
            return ImagePipelineOutput(images=images)

    return PixelTextToImagePipeline


def __getattr__(name: str):
    if name == 'PixelTextToImagePipeline':  # built lazily: importing promptkit must not import diffusers' pipelines
        return _pixel_pipeline_class_cached()
    raise AttributeError(name)


@functools.lru_cache(maxsize=None)
def _pixel_pipeline_class_cached():
    return _pixel_pipeline_class()


def _samples(data_samples: Any, batch: int) -> list[dict]:
    """Per-sample dicts from what the data loader gives: a list of dicts / data elements, a dict of lists
    (``pseudo_collate`` of dicts) or a list of captions."""
    if data_samples is None:
        raise ValueError('PromptedTextToImage needs data_samples with a caption per image')
    if isinstance(data_samples, dict):
        return [{k: v[i] for k, v in data_samples.items()} for i in range(batch)]
    out = []
    for s in data_samples:
        if isinstance(s, str):
            out.append(dict(caption=s))
        elif isinstance(s, BaseDataElement):
            out.append(s.to_dict())
        else:
            out.append(dict(s))
    return out


def _to_pixels(images: Any) -> Tensor:
    """uint8 (or 0..255 float) images, a list of (C, H, W) or a (B, C, H, W) tensor, to floats in [-1, 1]."""
    x = torch.stack(list(images)) if isinstance(images, (list, tuple)) else images
    return x.float() / 127.5 - 1.0


@MODELS.register_module()
class PromptedTextToImage(PromptedWrapperMixin, BaseModel):
    """A text-to-image diffusion model with a frozen UNet and a prompt strategy (or LoRA, or full fine-tuning).

    Components come from a local diffusers folder (``pretrained=``, read offline) or one by one: ``unet`` a
    ``UNet2DConditionModel`` config dict or folder, ``text_encoder`` a ``CLIPTextModel`` config dict or folder,
    ``tokenizer`` a tokenizer folder, ``vae`` an ``AutoencoderKL`` config dict or folder (None: a pixel-space
    model), ``scheduler`` a diffusers scheduler config ``dict(type='DDPMScheduler', ...)``. Explicit components
    replace those of ``pretrained``. The UNet is frozen here (``attach_prompts``), the text encoder(s) and VAE
    always; a LoRA (PEFT, via ``unet.add_adapter``) is added after freezing, so only its matrices train.

    Data: each sample is ``dict(inputs=uint8 image (C, H, W), data_samples=dict(caption=str))``; DreamBooth prior
    preservation adds ``class_image`` (uint8, same size) and ``class_caption`` to the data sample, and the loss is
    ``mse(instance) + weight · mse(class)``. SDXL-shaped UNets (``addition_embed_type='text_time'``) get their
    ``text_embeds`` (pooled second encoder) and ``time_ids`` (from the sample's ``original_size`` /
    ``crop_top_left`` when given, else the image size) in the loss and in sampling.

    Args:
        pretrained: Local diffusers folder (``model_index.json`` + component subfolders). Defaults to None.
        unet: ``UNet2DConditionModel`` config dict, or a folder. Defaults to None (from ``pretrained``).
        text_encoder: ``CLIPTextModel`` config dict, or a folder. Defaults to None.
        tokenizer: Tokenizer folder. Defaults to None.
        vae: ``AutoencoderKL`` config dict or folder; None with no ``pretrained`` VAE means pixel space.
        scheduler: Noise scheduler config for training, over the folder's scheduler config. Defaults to
            ``DDPMScheduler``.
        text_encoder_2: SDXL's second encoder (``CLIPTextModelWithProjection``) config dict or folder.
        tokenizer_2: SDXL's second tokenizer folder.
        prompt: Prompt strategy config (``PROMPTS``), e.g. ``dict(type='ApproxPrompt', num_tokens=16)``.
        lora: PEFT ``LoraConfig`` keywords for the LoRA baseline, e.g. ``dict(r=4, target_modules=['to_q', 'to_k',
            'to_v', 'to_out.0'])``; ``lora_alpha`` defaults to ``r`` and ``init_lora_weights`` to ``'gaussian'``,
            as diffusers' LoRA example.
        full_finetune: Train every UNet parameter (the upper baseline). Defaults to False.
        prediction_type: ``'epsilon'`` or ``'v_prediction'``; defaults to the scheduler config's.
        cfg_dropout: Probability of replacing a caption by ``''`` in training (classifier-free guidance).
        snr_gamma: Min-SNR-γ loss weighting (Hang et al. 2023; γ = 5 recommended), None for a plain MSE.
        noise_offset: Noise offset (added ``offset · N(0, 1)`` per sample and channel). Defaults to 0.
        prior_preservation: ``dict(weight=1.0)``: the class images' loss weight (DreamBooth). Defaults to None.
        gradient_checkpointing: Non-reentrant gradient checkpointing of the UNet's blocks. Defaults to False.
        frozen_dtype: ``'float16'`` / ``'bfloat16'``: keep the frozen text encoder(s), VAE and (unless
            ``full_finetune``) the UNet in this dtype, trained tensors in float32, as diffusers' examples
            (``weight_dtype``); combine with ``--amp``. Defaults to None (float32).
        sampler: Sampling for ``val_step`` / ``test_step`` / ``predict``: ``type`` (a diffusers scheduler,
            default ``'DDIMScheduler'``), ``num_inference_steps`` (25), ``guidance_scale`` (7.5), ``seed`` (0),
            ``height`` / ``width`` (default: the UNet's sample size times the VAE's scale).
        expected_trainable: If given, the trainable parameter count the model must end up with.
        data_preprocessor: MMEngine data preprocessor. Defaults to ``BaseDataPreprocessor`` (device moves only).
        init_cfg: MMEngine init config.

    Examples:
        >>> model = dict(type='promptkit.PromptedTextToImage', pretrained='checkpoints/stable-diffusion-v1-5',
        ...              prompt=dict(type='ApproxPrompt', num_tokens=16, kinds=('self', 'cross')))
    """

    def __init__(self, pretrained: str | None = None, unet: dict | str | None = None,
                 text_encoder: dict | str | None = None, tokenizer: str | None = None, vae: dict | str | None = None,
                 scheduler: dict | None = None, text_encoder_2: dict | str | None = None,
                 tokenizer_2: str | None = None, prompt: dict | None = None, lora: dict | None = None,
                 full_finetune: bool = False, prediction_type: str | None = None, cfg_dropout: float = 0.1,
                 snr_gamma: float | None = None, noise_offset: float = 0.0, prior_preservation: dict | None = None,
                 gradient_checkpointing: bool = False, frozen_dtype: str | None = None,
                 sampler: dict | None = None, expected_trainable: int | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 <= cfg_dropout < 1.0:
            raise ValueError(f'cfg_dropout must be in [0, 1), got {cfg_dropout}')
        if lora is not None and full_finetune:
            raise ValueError('lora= and full_finetune=True exclude each other: choose one baseline')
        parts = load_components(pretrained) if pretrained else {}
        self.pretrained = pretrained
        self.unet = self._component('unet', unet, parts, 'diffusers', 'UNet2DConditionModel', required=True)
        self.text_encoder = self._component('text_encoder', text_encoder, parts, 'transformers', 'CLIPTextModel',
                                            required=True)
        self.text_encoder_2 = self._component('text_encoder_2', text_encoder_2, parts, 'transformers',
                                              'CLIPTextModelWithProjection')
        self.vae = self._component('vae', vae, parts, 'diffusers', 'AutoencoderKL')
        self.tokenizer = self._tokenizer('tokenizer', tokenizer, parts, required=True)
        self.tokenizer_2 = self._tokenizer('tokenizer_2', tokenizer_2, parts) if self.text_encoder_2 else None
        base_sched = parts.get('scheduler')
        self.noise_scheduler = _build_scheduler(scheduler, base_sched.config if base_sched is not None else None)
        self.prediction_type = prediction_type or self.noise_scheduler.config.get('prediction_type', 'epsilon')
        if self.prediction_type not in ('epsilon', 'v_prediction'):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}")
        self.cfg_dropout, self.snr_gamma, self.noise_offset = cfg_dropout, snr_gamma, noise_offset
        self.prior_weight = None if prior_preservation is None else float(prior_preservation.get('weight', 1.0))
        self.sampler_cfg = dict(dict(type='DDIMScheduler', num_inference_steps=25, guidance_scale=7.5, seed=0),
                                **(sampler or {}))
        self.prompt_cfg, self.lora_cfg = (dict(prompt) if prompt else None), (dict(lora) if lora else None)
        self.base_fingerprints = base_fingerprints(self.unet, self.text_encoder, self.text_encoder_2)

        for frozen in (self.text_encoder, self.text_encoder_2, self.vae):
            if frozen is not None:
                frozen.requires_grad_(False)
        self.full_finetune = full_finetune
        self.host, self.prompt, self.train_roles = attach_prompts(self.unet, prompt, (), full_finetune)
        if lora is not None:
            self._add_lora(lora)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing(
                functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False))
        if frozen_dtype is not None:
            self._cast_frozen(frozen_dtype)
        self._report(expected_trainable)

    # ----------------------------------------------------------------------------------------------- building
    @staticmethod
    def _component(name: str, spec, parts: dict, lib: str, cls: str, required: bool = False):
        if spec is None:
            if required and name not in parts:
                raise ValueError(f'PromptedTextToImage: no {name}: give pretrained= (a diffusers folder with a '
                                 f'{name}/ subfolder) or {name}= (a {cls} config dict or folder)')
            return parts.get(name)
        klass = getattr(importlib.import_module(lib), cls)
        if isinstance(spec, nn.Module):
            return spec
        if isinstance(spec, str):
            if not osp.isdir(spec):
                raise FileNotFoundError(f'{name}={spec!r} is not a folder; give a local {cls} folder or a config '
                                        'dict (hub ids are never downloaded)')
            return klass.from_pretrained(spec, local_files_only=True)
        spec = dict(spec)
        if lib == 'transformers':  # transformers models take a config object
            config_cls = getattr(importlib.import_module(lib), cls.replace('WithProjection', '').replace(
                'Model', 'Config'))
            return klass(config_cls(**spec))
        return klass(**spec)

    @staticmethod
    def _tokenizer(name: str, spec, parts: dict, required: bool = False):
        if spec is None:
            if required and name not in parts:
                raise ValueError(f'PromptedTextToImage: no {name}: give pretrained= or {name}= (a tokenizer folder)')
            return parts.get(name)
        if not isinstance(spec, str):
            return spec
        if not osp.isdir(spec):
            raise FileNotFoundError(f'{name}={spec!r} is not a tokenizer folder (hub ids are never downloaded)')
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(spec, local_files_only=True)

    def _add_lora(self, lora: dict) -> None:
        from peft import LoraConfig
        cfg = dict(lora)
        cfg.setdefault('lora_alpha', cfg.get('r', 8))
        cfg.setdefault('init_lora_weights', 'gaussian')
        cfg.setdefault('target_modules', ['to_q', 'to_k', 'to_v', 'to_out.0'])
        self.unet.add_adapter(LoraConfig(**cfg))

    def _cast_frozen(self, dtype: str) -> None:
        dt = {'float16': torch.float16, 'bfloat16': torch.bfloat16}.get(dtype)
        if dt is None:
            raise ValueError(f"frozen_dtype must be 'float16' or 'bfloat16', got {dtype!r}")
        for m in (self.text_encoder, self.text_encoder_2, self.vae):
            if m is not None:
                m.to(dt)
        if not self.full_finetune:
            for p in self.unet.parameters():
                if not p.requires_grad:
                    p.data = p.data.to(dt)

    @property
    def backbone(self) -> nn.Module:
        """The prompted host (the UNet), under the name the shared wrapper code uses."""
        return self.unet

    def init_weights(self) -> None:
        """Nothing to do: every component was loaded or built with its own initialisation."""
        self._is_init = True

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.text_encoder, self.text_encoder_2, self.vae):
            if frozen is not None:
                frozen.eval()
        return self

    # ------------------------------------------------------------------------------------------------ pieces
    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1

    def _encoders(self) -> tuple[list, list]:
        toks = [self.tokenizer] + ([self.tokenizer_2] if self.text_encoder_2 is not None else [])
        encs = [self.text_encoder] + ([self.text_encoder_2] if self.text_encoder_2 is not None else [])
        return toks, encs

    @torch.no_grad()
    def encode_text(self, captions: Sequence[str]) -> tuple[Tensor, Tensor | None]:
        """Text states (B, L, D) and, for SDXL, pooled embeddings, in the UNet's dtype."""
        states, pooled = encode_text(*self._encoders(), captions, self.unet.device)
        dtype = self.unet.dtype
        return states.to(dtype), None if pooled is None else pooled.to(dtype)

    @torch.no_grad()
    def encode_images(self, pixels: Tensor) -> Tensor:
        """Pixels in [-1, 1] to what the UNet denoises: VAE latents times its scaling factor, or the pixels."""
        if self.vae is None:
            return pixels
        latents = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.sample()
        shift = self.vae.config.get('shift_factor') or 0.0
        return (latents - shift) * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, x: Tensor) -> Tensor:
        """The UNet's sample to images in [0, 1], (B, C, H, W)."""
        if self.vae is not None:
            shift = self.vae.config.get('shift_factor') or 0.0
            x = self.vae.decode((x / self.vae.config.scaling_factor + shift).to(self.vae.dtype)).sample
        return (x.float() / 2 + 0.5).clamp(0, 1)

    def _added_cond(self, pooled: Tensor | None, samples: list[dict], height: int, width: int) -> dict | None:
        if self.unet.config.get('addition_embed_type') != 'text_time':
            return None
        if pooled is None:
            raise ValueError('this UNet is SDXL-shaped (addition_embed_type="text_time") and needs the pooled text '
                             'embeddings of a second text encoder: give text_encoder_2= and tokenizer_2=')
        ids = []
        for s in samples:
            ids.append(sdxl_time_ids(height, width, 1, pooled.device, pooled.dtype,
                                     tuple(s['original_size']) if s.get('original_size') else None,
                                     tuple(s.get('crop_top_left') or (0, 0))))
        return dict(text_embeds=pooled, time_ids=torch.cat(ids))

    # ---------------------------------------------------------------------------------------------- training
    def loss(self, inputs: Any, data_samples: Any) -> dict[str, Tensor]:
        """The denoising loss of one batch (see the class docstring)."""
        pixels = _to_pixels(inputs).to(self.unet.device)
        samples = _samples(data_samples, len(pixels))
        captions = [s['caption'] for s in samples]
        n_inst = len(pixels)
        prior = self.prior_weight is not None and all('class_image' in s for s in samples)
        if self.prior_weight is not None and not prior:
            raise ValueError('prior_preservation is set but the batch has no class_image/class_caption: use a '
                             'DreamBoothDataset with class_data_root (and class_prompt)')
        if prior:
            pixels = torch.cat([pixels, _to_pixels([s['class_image'] for s in samples]).to(pixels.device)])
            captions += [s['class_caption'] for s in samples]
            samples = samples + samples
        if self.training and self.cfg_dropout > 0:
            captions = ['' if random.random() < self.cfg_dropout else c for c in captions]
        latents = self.encode_images(pixels).to(self.unet.dtype)
        noise = torch.randn_like(latents)
        if self.noise_offset:
            noise = noise + self.noise_offset * torch.randn(latents.shape[:2] + (1, 1), device=latents.device,
                                                            dtype=latents.dtype)
        B = len(latents)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (B,), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        states, pooled = self.encode_text(captions)
        added = self._added_cond(pooled, samples, pixels.shape[-2], pixels.shape[-1])
        pred = self.unet(noisy, timesteps, encoder_hidden_states=states, added_cond_kwargs=added).sample
        target = noise if self.prediction_type == 'epsilon' else \
            self.noise_scheduler.get_velocity(latents, noise, timesteps)
        per_sample = F.mse_loss(pred.float(), target.float(), reduction='none').mean(dim=(1, 2, 3))
        if self.snr_gamma is not None:
            from diffusers.training_utils import compute_snr
            snr = compute_snr(self.noise_scheduler, timesteps)
            weight = snr.clamp(max=self.snr_gamma)
            weight = weight / snr if self.prediction_type == 'epsilon' else weight / (snr + 1)
            per_sample = per_sample * weight
        losses = dict(loss=per_sample[:n_inst].mean())
        if prior:
            losses['loss_prior'] = self.prior_weight * per_sample[n_inst:].mean()
        return losses

    # ---------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, captions: Sequence[str], num_inference_steps: int | None = None,
               guidance_scale: float | None = None, seed: int | None = None, height: int | None = None,
               width: int | None = None, negative_prompt: str = '') -> Tensor:
        """Generate one image per caption with the sampler config (overridable here); (B, C, H, W) in [0, 1]."""
        cfg = self.sampler_cfg
        steps = num_inference_steps or cfg['num_inference_steps']
        guidance = cfg['guidance_scale'] if guidance_scale is None else guidance_scale
        seed = cfg.get('seed', 0) if seed is None else seed
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        height = height or cfg.get('height') or size[0] * self.vae_scale
        width = width or cfg.get('width') or size[1] * self.vae_scale
        if height % self.vae_scale or width % self.vae_scale:
            raise ValueError(f'height/width {height}x{width} must be multiples of the VAE scale {self.vae_scale}')
        sched_cfg = {k: v for k, v in cfg.items()
                     if k not in ('num_inference_steps', 'guidance_scale', 'seed', 'height', 'width')}
        scheduler = _build_scheduler(sched_cfg, self.noise_scheduler.config)
        cond, pooled = self.encode_text(captions)
        uncond, pooled_u = self.encode_text([negative_prompt] * len(captions))
        samples = [{} for _ in captions]
        added = self._added_cond(pooled, samples, height, width)
        added_u = self._added_cond(pooled_u, samples, height, width)
        generator = torch.Generator().manual_seed(int(seed))
        shape = (len(captions), self.unet.config.in_channels, height // self.vae_scale, width // self.vae_scale)
        x = denoise(self.unet, scheduler, cond, uncond, shape, steps, guidance, generator, added, added_u)
        return self.decode(x)

    def forward(self, inputs: Any = None, data_samples: Any = None, mode: str = 'tensor'):
        """MMEngine's entry point: ``'loss'`` (the denoising loss), ``'predict'`` (samples for the captions:
        ``BaseDataElement``s with ``caption``, ``pred_image`` (C, H, W) in [0, 1] and, when inputs were given,
        ``gt_image``), ``'tensor'`` (the generated images, (B, C, H, W))."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        batch = len(inputs) if inputs is not None else len(data_samples)
        samples = _samples(data_samples, batch)
        images = self.sample([s['caption'] for s in samples])
        if mode == 'tensor':
            return images
        if mode != 'predict':
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        out = []
        for i, (s, img) in enumerate(zip(samples, images)):
            fields = {k: v for k, v in s.items() if k not in ('class_image',)}
            if inputs is not None:
                fields['gt_image'] = inputs[i].cpu()
            out.append(BaseDataElement(**fields, pred_image=img.cpu()))
        return out

    # ------------------------------------------------------------------------------------- prompts, pipelines
    @contextlib.contextmanager
    def prompts_disabled(self) -> Iterator[None]:
        """Run the UNet unprompted inside the block (PEFT LoRA stays on; use ``unet.disable_adapters()``)."""
        with self.host.disabled():
            yield

    def detach_prompts(self) -> nn.Module:
        """Give every attention its previous processor back and return the UNet."""
        self.host.detach()
        return self.unet

    def to_pipeline(self, scheduler: dict | None = None):
        """A diffusers pipeline sharing this model's (prompted) UNet, text encoder(s), tokenizer(s) and VAE.

        ``StableDiffusionPipeline`` (or ``StableDiffusionXLPipeline`` with two text encoders); a VAE-less model
        gets :class:`PixelTextToImagePipeline`. The scheduler is built from ``scheduler`` (default: the sampler
        config's type) over the noise scheduler's config.
        """
        sched_cfg = dict(type=(scheduler or {}).get('type', self.sampler_cfg['type']),
                         **{k: v for k, v in (scheduler or {}).items() if k != 'type'})
        sched = _build_scheduler(sched_cfg, self.noise_scheduler.config)
        if self.vae is None:
            return _pixel_pipeline_class_cached()(unet=self.unet, text_encoder=self.text_encoder,
                                                  tokenizer=self.tokenizer, scheduler=sched)
        if self.text_encoder_2 is not None:
            from diffusers import StableDiffusionXLPipeline
            return StableDiffusionXLPipeline(vae=self.vae, text_encoder=self.text_encoder,
                                             text_encoder_2=self.text_encoder_2, tokenizer=self.tokenizer,
                                             tokenizer_2=self.tokenizer_2, unet=self.unet, scheduler=sched)
        from diffusers import StableDiffusionPipeline
        return StableDiffusionPipeline(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                       unet=self.unet, scheduler=sched, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)

    def artifact_info(self) -> dict:
        """What a prompt artifact records about this wrapper besides its tensors (see ``promptkit.diffusers``)."""
        return dict(lora=self.lora_cfg, fingerprints=self.base_fingerprints)

    def save_pretrained(self, folder: str) -> str:
        """Write a diffusers folder (``to_pipeline().save_pretrained``) with the prompts beside it, at its root.

        The components are the frozen base (prompt processors are not part of diffusers' save); load the prompts
        onto it with ``promptkit.diffusers.load_prompts(pipe, folder)``. A folder that already holds a model is
        not overwritten.
        """
        from ..artifacts import save_prompts
        if self.lora_cfg is not None:
            raise NotImplementedError('save_pretrained of a LoRA model would write PEFT-wrapped UNet weights; use '
                                      'the prompts.safetensors that training writes, with the base folder')
        if osp.exists(osp.join(folder, 'model_index.json')):
            raise FileExistsError(f'{folder} already holds a diffusers model; choose a new folder')
        os.makedirs(folder, exist_ok=True)
        with self.prompts_disabled():
            self.to_pipeline().save_pretrained(folder)
        return save_prompts(self, folder)

