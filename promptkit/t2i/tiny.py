"""A tiny text-to-image model built fully offline, saved as a diffusers folder (the CPU demo's base).

Everything comes from configs and from files that ship with the installed packages; nothing is downloaded:

- the tokenizer is a real ``transformers.CLIPTokenizer`` whose ``vocab.json`` / ``merges.txt`` are derived from the
  BPE file inside open_clip (``bpe_simple_vocab_16e6.txt.gz``, the one OpenAI CLIP and Stable Diffusion use), so
  its ids equal open_clip's tokenizer's;
- the text encoder is a ``transformers.CLIPTextModel`` from a small ``CLIPTextConfig``;
- the denoiser is a pixel-space ``diffusers.UNet2DConditionModel`` (default 1×8×8, no VAE) with cross-attention
  to the text states in every block;
- the noise schedule is a ``diffusers.DDPMScheduler``.

:func:`save_tiny_text_to_image` writes them with each library's own ``save_pretrained`` into the layout of a
Stable Diffusion folder (``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``model_index.json``), so
``from_pretrained(folder, subfolder=...)`` and ``promptkit.PromptedTextToImage(pretrained=folder)`` load it offline.
"""
from __future__ import annotations

import gzip
import json
import os
import os.path as osp
from typing import Any

__all__ = ['open_clip_bpe_path', 'write_clip_tokenizer_files', 'build_clip_tokenizer', 'TINY_UNET', 'TINY_TEXT',
           'TINY_SCHEDULER', 'build_tiny_text_to_image', 'save_tiny_text_to_image', 'load_tiny_text_to_image']

#: A pixel-space UNet for 1×8×8 images: two resolutions (8², 4²) of one width (32: every attention site has the
#: same width), cross-attention in every block (14 sites: attn1 + attn2 of 7 transformer blocks), 0.43M parameters.
TINY_UNET: dict[str, Any] = dict(
    sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(32, 32),
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'),
    up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'), mid_block_type='UNetMidBlock2DCrossAttn',
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
#: A 2-layer CLIP text transformer of width 32 over the full CLIP vocabulary (49,408 tokens), 16 positions.
TINY_TEXT: dict[str, Any] = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=16, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
#: The cosine schedule (Nichol & Dhariwal) suits small pixel-space images better than SD's scaled-linear one.
TINY_SCHEDULER: dict[str, Any] = dict(num_train_timesteps=1000, beta_schedule='squaredcos_cap_v2',
                                      prediction_type='epsilon', clip_sample=True)


def open_clip_bpe_path() -> str:
    """The BPE merges file that ships inside open_clip (``bpe_simple_vocab_16e6.txt.gz``)."""
    from open_clip.tokenizer import default_bpe
    path = default_bpe()
    if not osp.isfile(path):
        raise FileNotFoundError(f'open_clip\'s BPE file {path} is missing; reinstall open_clip_torch')
    return path


def write_clip_tokenizer_files(out_dir: str, bpe_path: str | None = None) -> tuple[str, str]:
    """Derive ``vocab.json`` and ``merges.txt`` of a Hugging Face ``CLIPTokenizer`` from open_clip's BPE file.

    The vocabulary is built in exactly the order open_clip's ``SimpleTokenizer`` builds it (256 byte symbols, the
    same with ``</w>``, the 48,894 merges, then start/end of text), so ids agree token for token. Written by hand:
    neither library converts between the two formats.

    Args:
        out_dir: Folder to write the two files into (created if missing).
        bpe_path: The gzipped merges file. Defaults to the one inside open_clip.

    Returns:
        The paths of ``vocab.json`` and ``merges.txt``.
    """
    from open_clip.tokenizer import bytes_to_unicode

    bpe_path = bpe_path or open_clip_bpe_path()
    lines = gzip.open(bpe_path).read().decode('utf-8').split('\n')
    merges = lines[1:49152 - 256 - 2 + 1]  # the slice open_clip and transformers both read
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + '</w>' for s in symbols] + [''.join(m.split()) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']  # open_clip's <start_of_text>/<end_of_text>, same ids
    os.makedirs(out_dir, exist_ok=True)
    vocab_file, merges_file = osp.join(out_dir, 'vocab.json'), osp.join(out_dir, 'merges.txt')
    with open(vocab_file, 'w', encoding='utf-8') as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(merges_file, 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + '\n'.join(merges) + '\n')
    return vocab_file, merges_file


def build_clip_tokenizer(work_dir: str, model_max_length: int = 77, bpe_path: str | None = None) -> Any:
    """A real ``transformers.CLIPTokenizer`` from open_clip's BPE file (files written under ``work_dir``).

    Args:
        work_dir: Folder for ``vocab.json`` / ``merges.txt``.
        model_max_length: Context length (padding target). Defaults to 77 (CLIP's).
        bpe_path: The gzipped merges file. Defaults to the one inside open_clip.

    Returns:
        The tokenizer (pad token ``<|endoftext|>``, as in Stable Diffusion's).
    """
    from transformers import CLIPTokenizer

    vocab_file, merges_file = write_clip_tokenizer_files(work_dir, bpe_path)
    return CLIPTokenizer(vocab_file, merges_file, model_max_length=model_max_length, pad_token='<|endoftext|>')


def build_tiny_text_to_image(work_dir: str, unet: dict | None = None, text_encoder: dict | None = None,
                             scheduler: dict | None = None, seed: int = 0) -> dict[str, Any]:
    """Build the tiny components, randomly initialised from ``seed``.

    Args:
        work_dir: Folder for the tokenizer files.
        unet: Overrides of :data:`TINY_UNET`.
        text_encoder: Overrides of :data:`TINY_TEXT`.
        scheduler: Overrides of :data:`TINY_SCHEDULER`.
        seed: Seed of the initialisation.

    Returns:
        ``dict(unet=..., text_encoder=..., tokenizer=..., scheduler=...)``.
    """
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_cfg = dict(TINY_TEXT, **(text_encoder or {}))
    unet_cfg = dict(TINY_UNET, **(unet or {}))
    if unet_cfg['cross_attention_dim'] != text_cfg['hidden_size']:
        raise ValueError(f'unet cross_attention_dim ({unet_cfg["cross_attention_dim"]}) must equal the text '
                         f'encoder hidden_size ({text_cfg["hidden_size"]})')
    torch.manual_seed(seed)
    return dict(
        unet=UNet2DConditionModel(**unet_cfg),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_cfg)),
        tokenizer=build_clip_tokenizer(work_dir, model_max_length=text_cfg['max_position_embeddings']),
        scheduler=DDPMScheduler(**dict(TINY_SCHEDULER, **(scheduler or {}))))


def save_tiny_text_to_image(folder: str, components: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """Write a diffusers folder (``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``model_index.json``).

    Args:
        folder: Output folder. It must not exist yet or be empty (nothing a user wrote is overwritten).
        components: What :func:`build_tiny_text_to_image` returns (e.g. after training). Defaults to a fresh build.
        **kwargs: Arguments of :func:`build_tiny_text_to_image` when ``components`` is not given.

    Returns:
        ``folder``.
    """
    if osp.isdir(folder) and os.listdir(folder):
        raise FileExistsError(f'{folder} is not empty; choose a new folder for the tiny model (nothing is '
                              'overwritten)')
    os.makedirs(folder, exist_ok=True)
    if components is None:
        components = build_tiny_text_to_image(osp.join(folder, 'tokenizer'), **kwargs)
    for name in ('unet', 'text_encoder', 'tokenizer', 'scheduler'):
        components[name].save_pretrained(osp.join(folder, name))
    # The index a StableDiffusionPipeline folder carries; pixel-space, so no VAE, safety checker or extractor.
    index = dict(_class_name='StableDiffusionPipeline', _diffusers_version=_diffusers_version(),
                 unet=['diffusers', 'UNet2DConditionModel'], text_encoder=['transformers', 'CLIPTextModel'],
                 tokenizer=['transformers', 'CLIPTokenizer'],
                 scheduler=['diffusers', type(components['scheduler']).__name__], vae=[None, None],
                 safety_checker=[None, None], feature_extractor=[None, None], image_encoder=[None, None],
                 requires_safety_checker=False)
    with open(osp.join(folder, 'model_index.json'), 'w') as f:
        json.dump(index, f, indent=2)
    return folder


def load_tiny_text_to_image(folder: str) -> dict[str, Any]:
    """Load the components of a folder written by :func:`save_tiny_text_to_image` (local files only)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if not osp.isfile(osp.join(folder, 'model_index.json')):
        raise FileNotFoundError(f'{folder} has no model_index.json; pass a folder written by '
                                'save_tiny_text_to_image or a diffusers pipeline')
    return dict(unet=UNet2DConditionModel.from_pretrained(folder, subfolder='unet', local_files_only=True),
                text_encoder=CLIPTextModel.from_pretrained(folder, subfolder='text_encoder', local_files_only=True),
                tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder='tokenizer', local_files_only=True),
                scheduler=DDPMScheduler.from_pretrained(folder, subfolder='scheduler', local_files_only=True))


def _diffusers_version() -> str:
    import diffusers
    return diffusers.__version__
