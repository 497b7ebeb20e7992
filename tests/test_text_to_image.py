"""PromptedTextToImage: loss, gradients, baselines, sampling, artifacts on diffusers pipelines, offline folders."""
import os

import pytest
import torch

pytest.importorskip('diffusers')
pytest.importorskip('transformers')

from promptkit import PromptedTextToImage  # noqa: E402
from promptkit.artifacts import save_prompts  # noqa: E402
from t2i_tiny import TINY_TEXT, TINY_UNET, tiny_sd_folder, tiny_tokenizer_files  # noqa: E402

#: Two widths, so every strategy runs with per-site parameters.
UNET = dict(block_out_channels=(32, 64))
APPROX = dict(type='ApproxPrompt', num_tokens=4)
KV = dict(type='AttentionPrompt', num_tokens=2, train_head_norm=False)


@pytest.fixture(scope='module')
def sd(tmp_path_factory):
    return tiny_sd_folder(str(tmp_path_factory.mktemp('sd')), unet=UNET)


@pytest.fixture(scope='module')
def other_sd(tmp_path_factory):
    return tiny_sd_folder(str(tmp_path_factory.mktemp('sd_other')), seed=1, unet=UNET)


def _batch(n=2, seed=0, size=32, channels=3):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (channels, size, size), generator=g, dtype=torch.uint8) for _ in range(n)]
    return images, [dict(caption=c) for c in ['a photo of sks dog', 'a red cube', 'a dog', 'a cat'][:n]]


def _loss(model, images, samples, seed=0):
    torch.manual_seed(seed)  # the same noise and timesteps every call: a fixed batch
    return sum(model(images, samples, mode='loss').values())


def test_loss_falls_and_frozen_base_is_bit_identical(sd):
    model = PromptedTextToImage(pretrained=sd, prompt=APPROX, cfg_dropout=0.0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    images, samples = _batch(2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    before = _loss(model, images, samples).item()
    for _ in range(6):
        loss = _loss(model, images, samples)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _loss(model, images, samples).item()
    assert after < before
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


@pytest.mark.parametrize('prompt', [APPROX, KV])
def test_prompts_and_lora_gradients_with_checkpointing(sd, prompt):
    model = PromptedTextToImage(pretrained=sd, prompt=prompt, lora=dict(r=2), gradient_checkpointing=True,
                                cfg_dropout=0.0)
    assert model.unet.is_gradient_checkpointing
    model.train()
    images, samples = _batch()
    _loss(model, images, samples).backward()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in model.named_parameters() if n.startswith('prompt.') or 'lora_' in n}
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == trained
    # W1 gets no gradient while W2 = 0 (its initialisation): P' = P + P·W1·W2
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.startswith('prompt.')
               and 'prompt_down' not in n)


def test_baselines_train_the_right_set(sd):
    full = PromptedTextToImage(pretrained=sd, full_finetune=True)
    assert full.num_trainable() == sum(p.numel() for p in full.unet.parameters())
    assert not any(p.requires_grad for p in full.text_encoder.parameters())
    lora = PromptedTextToImage(pretrained=sd, lora=dict(r=4))
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    # r = 4 on to_q/to_k/to_v/to_out.0 of every attention: (in + out) * 4 per projection
    expected = sum((m.in_features + m.out_features) * 4 for n, m in lora.unet.named_modules()
                   if n.rsplit('.', 1)[-1] in ('to_q', 'to_k', 'to_v') or n.endswith('to_out.0'))
    assert names and all('lora_' in n for n in names) and lora.num_trainable() == expected
    with pytest.raises(ValueError, match='exclude each other'):
        PromptedTextToImage(pretrained=sd, lora=dict(r=4), full_finetune=True)


def test_noop_prompts_give_the_base_samples(sd):
    model = PromptedTextToImage(pretrained=sd, prompt=APPROX, sampler=dict(num_inference_steps=2)).eval()
    torch.nn.init.zeros_(model.prompt.prompt) if isinstance(model.prompt.prompt, torch.Tensor) else \
        [torch.nn.init.zeros_(p) for p in model.prompt.prompt]
    with model.prompts_disabled():
        ref = model.sample(['a dog'])
    assert torch.equal(model.sample(['a dog']), ref)


def test_prior_preservation_min_snr_and_v_prediction(sd):
    images, samples = _batch()
    prior = [dict(s, class_image=img, class_caption='a dog') for s, img in zip(samples, images)]
    model = PromptedTextToImage(pretrained=sd, prompt=APPROX, prior_preservation=dict(weight=0.5))
    losses = model(images, prior, mode='loss')
    assert set(losses) == {'loss', 'loss_prior'} and all(v.isfinite() for v in losses.values())
    with pytest.raises(ValueError, match='class_image'):
        model(images, samples, mode='loss')
    plain = PromptedTextToImage(pretrained=sd, prompt=APPROX, cfg_dropout=0.0)
    snr = PromptedTextToImage(pretrained=sd, prompt=APPROX, cfg_dropout=0.0, snr_gamma=5.0)
    snr.load_state_dict(plain.state_dict())
    assert not torch.allclose(_loss(plain, images, samples), _loss(snr, images, samples))
    v = PromptedTextToImage(pretrained=sd, prompt=APPROX, scheduler=dict(prediction_type='v_prediction'))
    assert v.prediction_type == 'v_prediction' and _loss(v, images, samples).isfinite()


def _pipe(folder):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the sampler to_pipeline() uses
    return pipe


def _gen(pipe, size=32):
    return pipe('a photo of sks dog', num_inference_steps=2, height=size, width=size, output_type='np',
                generator=torch.Generator().manual_seed(0)).images


@pytest.mark.parametrize('prompt,lora', [(KV, None), (APPROX, dict(r=2))])
def test_prompt_file_on_a_user_pipeline(sd, other_sd, tmp_path, monkeypatch, prompt, lora):
    from promptkit.diffusers import load_prompts, unload_prompts
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    model = PromptedTextToImage(pretrained=sd, prompt=prompt, lora=lora).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # "trained" tensors, different from their initialisation
    path = save_prompts(model, str(tmp_path))
    ours = _gen(model.to_pipeline())
    pipe = _pipe(sd)
    base = _gen(pipe)
    load_prompts(pipe, str(tmp_path))  # the folder
    out = _gen(pipe)
    assert out.shape == (1, 32, 32, 3)
    assert abs(out - ours).max() < 1e-5 and abs(out - base).max() > 1e-4
    with pytest.raises(RuntimeError, match='already has promptkit prompts'):
        load_prompts(pipe, path)
    unload_prompts(pipe)
    assert abs(_gen(pipe) - base).max() == 0
    with pytest.raises(RuntimeError, match='another base') as err:
        load_prompts(_pipe(other_sd), path)
    assert model.base_fingerprints['unet'] in str(err.value)


def test_save_pretrained_round_trip_offline(sd, tmp_path, monkeypatch):
    from promptkit.diffusers import load_prompts
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    model = PromptedTextToImage(pretrained=sd, prompt=KV).eval()
    folder = str(tmp_path / 'exported')
    model.save_pretrained(folder)
    with pytest.raises(FileExistsError):
        model.save_pretrained(folder)
    again = PromptedTextToImage(pretrained=folder, prompt=KV)
    assert again.base_fingerprints == model.base_fingerprints
    pipe = _pipe(folder)
    load_prompts(pipe, folder)
    assert abs(_gen(pipe) - _gen(model.to_pipeline())).max() < 1e-5


def test_pixel_space_model_from_configs(tmp_path):
    tok = tiny_tokenizer_files(str(tmp_path / 'tok'))
    unet = dict(TINY_UNET, in_channels=1, out_channels=1, sample_size=16, **UNET)
    model = PromptedTextToImage(unet=unet, text_encoder=TINY_TEXT, tokenizer=tok, prompt=APPROX,
                                sampler=dict(num_inference_steps=2)).eval()
    assert model.vae is None
    images = [torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8) for _ in range(2)]
    assert model(images, [dict(caption='a 3')] * 2, mode='loss')['loss'].isfinite()
    out = model(images, [dict(caption='a 3')] * 2, mode='predict')
    assert out[0].pred_image.shape == (1, 16, 16) and out[0].gt_image.shape == (1, 16, 16)
    pipe = model.to_pipeline()
    assert type(pipe).__name__ == 'PixelTextToImagePipeline'
    img = pipe('a 3', num_inference_steps=2, output_type='np', generator=torch.Generator().manual_seed(0)).images
    assert img.shape == (1, 16, 16, 1)
    model.save_pretrained(str(tmp_path / 'pixel'))
    again = PromptedTextToImage(pretrained=str(tmp_path / 'pixel'), prompt=APPROX)
    assert again.vae is None and again.base_fingerprints == model.base_fingerprints


def test_sdxl_shaped_unet_gets_text_embeds_and_time_ids(tmp_path):
    tok = tiny_tokenizer_files(str(tmp_path / 'tok'))
    unet = dict(TINY_UNET, **UNET, cross_attention_dim=64, addition_embed_type='text_time',
                addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)
    model = PromptedTextToImage(unet=unet, text_encoder=TINY_TEXT, tokenizer=tok, text_encoder_2=TINY_TEXT,
                                tokenizer_2=tok, prompt=APPROX, sampler=dict(num_inference_steps=2),
                                vae=dict(__import__('t2i_tiny').TINY_VAE))
    images, samples = _batch()
    assert model(images, samples, mode='loss')['loss'].isfinite()
    assert model.sample(['a dog'], height=32, width=32).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match='text_encoder_2'):
        PromptedTextToImage(unet=unet, text_encoder=TINY_TEXT, tokenizer=tok, prompt=APPROX)(
            images, samples, mode='loss')


def test_bad_inputs_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='model_index.json'):
        PromptedTextToImage(pretrained=str(tmp_path))
    with pytest.raises(ValueError, match='unet='):
        PromptedTextToImage(text_encoder=TINY_TEXT, tokenizer=str(tmp_path))
    assert os.path.isdir(tmp_path)
