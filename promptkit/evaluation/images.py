"""What the image metrics share: reading generated images out of data samples and feature extractors.

Images reach the metrics as tensors (C, H, W) or (N, C, H, W), float in [0, 1] or uint8 in [0, 255], or as PIL
images; :func:`to_unit_images` turns any of them into float (N, C, H, W) in [0, 1]. Feature extractors map such a
batch to features (N, D): :class:`PixelEncoder` (the flattened pixels), :class:`OpenCLIPEncoder` (an open_clip
image tower, weights from a path) and :class:`TimmEncoder` (a timm model, e.g. DINO ViT-S/16, weights from a path).
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['to_unit_images', 'sample_field', 'load_images', 'PixelEncoder', 'OpenCLIPEncoder', 'TimmEncoder',
           'build_encoder']

# OpenAI CLIP's normalisation (open_clip's default for its towers).
_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def to_unit_images(images: Any) -> torch.Tensor:
    """A batch (N, C, H, W) float in [0, 1] from a tensor (C, H, W) / (N, C, H, W), a PIL image or a list of them.

    Raises:
        ValueError: For a float tensor outside [0, 1] (e.g. a model's [-1, 1] output: pass ``(x + 1) / 2``).
    """
    if isinstance(images, (list, tuple)):
        return torch.cat([to_unit_images(im) for im in images])
    if not isinstance(images, torch.Tensor):  # PIL (or numpy (H, W[, C]))
        import numpy as np
        arr = np.asarray(images)
        arr = arr[..., None] if arr.ndim == 2 else arr
        images = torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    x = images[None] if images.dim() == 3 else images
    if x.dim() != 4:
        raise ValueError(f'images must be (C, H, W) or (N, C, H, W), got shape {tuple(images.shape)}')
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    x = x.detach().float()
    if x.numel() and (x.min() < -1e-4 or x.max() > 1 + 1e-4):
        raise ValueError(f'float images must lie in [0, 1], got [{x.min():.3f}, {x.max():.3f}]; map a model\'s '
                         '[-1, 1] output with (x + 1) / 2 first')
    return x.clamp(0, 1)


def sample_field(sample: Any, key: str) -> Any:
    """``sample[key]`` for a dict, ``sample.key`` for an MMEngine data element; a clear error when missing."""
    value = sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)
    if value is None:
        have = list(sample) if isinstance(sample, dict) else list(getattr(sample, 'keys', lambda: [])())
        raise KeyError(f'data sample has no {key!r} (it has {have}); set the metric\'s key argument to the field '
                       'that holds it')
    return value


def load_images(source: str | Sequence[Any] | torch.Tensor) -> torch.Tensor:
    """Reference images as (N, C, H, W) in [0, 1]: a folder, a list of files, or images / a tensor."""
    from PIL import Image

    if isinstance(source, str):
        if not osp.isdir(source):
            raise FileNotFoundError(f'reference image folder {source} does not exist')
        from ..datasets.image_list import IMG_EXTENSIONS
        import os
        source = sorted(osp.join(source, f) for f in os.listdir(source) if f.lower().endswith(IMG_EXTENSIONS))
        if not source:
            raise FileNotFoundError(f'no images ({", ".join(IMG_EXTENSIONS)}) in the reference folder')
    if isinstance(source, torch.Tensor):
        return to_unit_images(source)
    images = [Image.open(s).convert('RGB') if isinstance(s, str) else s for s in source]
    sizes = {im.size for im in images if hasattr(im, 'size') and not isinstance(im, torch.Tensor)}
    if len(sizes) > 1:  # PIL images of different sizes: resize to the first (the towers resize anyway)
        images = [im.resize(images[0].size) for im in images]
    return to_unit_images(list(images))


def _resize_rgb(x: torch.Tensor, size: int | Sequence[int], mean: Sequence[float],
                std: Sequence[float]) -> torch.Tensor:
    """Resize (bicubic) to the tower's input size, grey -> RGB, normalise: what the towers' own transforms do."""
    size = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode='bicubic', align_corners=False).clamp(0, 1)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


class PixelEncoder:
    """The flattened pixels (in [0, 1]) as features: the demo's drift measure on 8×8 digits."""

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, C·H·W)."""
        return to_unit_images(images).flatten(1)

    __call__ = encode_images


def _check_weights(path: str | None, what: str) -> str:
    if not path or not osp.isfile(path):
        raise FileNotFoundError(f'{what}: weights file {path!r} does not exist; pass the path of a local checkpoint '
                                '(promptkit never downloads weights)')
    return path


class OpenCLIPEncoder:
    """An open_clip model's image and text towers, L2-normalised embeddings.

    Args:
        model: An open_clip model name (``'ViT-B-32'``) or an already built open_clip ``CLIP`` module.
        pretrained: Path of the weights file when ``model`` is a name (never a hub tag).
        device: Where to run. Defaults to ``'cpu'``.
    """

    def __init__(self, model: str | nn.Module = 'ViT-B-32', pretrained: str | None = None,
                 device: str = 'cpu') -> None:
        import open_clip
        if isinstance(model, str):
            self.model = open_clip.create_model(model, pretrained=_check_weights(pretrained, f'open_clip {model}'))
            self.tokenizer = open_clip.get_tokenizer(model)
        else:
            self.model = model
            self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=getattr(model, 'context_length', 77))
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        visual = self.model.visual
        self.image_size = getattr(visual, 'image_size', 224)
        cfg = getattr(visual, 'preprocess_cfg', {}) or {}
        self.mean, self.std = tuple(cfg.get('mean', _CLIP_MEAN)), tuple(cfg.get('std', _CLIP_STD))

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> unit-norm embeddings (N, D)."""
        x = _resize_rgb(to_unit_images(images).to(self.device), self.image_size, self.mean, self.std)
        return F.normalize(self.model.encode_image(x).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N captions -> unit-norm embeddings (N, D)."""
        return F.normalize(self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float(), dim=-1)

    __call__ = encode_images


class TimmEncoder:
    """A timm model's pooled features, L2-normalised (DINO ViT-S/16 by default: the DreamBooth DINO metric).

    Args:
        model: A timm model name or an already built timm module (``num_classes=0``).
        checkpoint: Path of the weights file when ``model`` is a name (loaded through timm's ``pretrained_cfg``
            overlay, so timm filters and adapts the keys as for its own weights).
        device: Where to run. Defaults to ``'cpu'``.
    """

    def __init__(self, model: str | nn.Module = 'vit_small_patch16_224.dino', checkpoint: str | None = None,
                 device: str = 'cpu') -> None:
        import timm
        if isinstance(model, str):
            self.model = timm.create_model(model, pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(
                file=_check_weights(checkpoint, f'timm {model}')))
        else:
            self.model = model
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        cfg = getattr(self.model, 'pretrained_cfg', {}) or {}
        # the size the model was built for (a ViT's patch embedding), else its pretrained config's
        built = getattr(getattr(self.model, 'patch_embed', None), 'img_size', None)
        self.image_size = tuple(built) if built else tuple(cfg.get('input_size', (3, 224, 224)))[-2:]
        self.mean = tuple(cfg.get('mean', (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get('std', (0.229, 0.224, 0.225)))

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> unit-norm features (N, D)."""
        x = _resize_rgb(to_unit_images(images).to(self.device), self.image_size, self.mean, self.std)
        out = self.model(x)
        if out.dim() > 2:  # a model with its head still on, or unpooled tokens: (N, L, D) -> the first token
            out = out[:, 0]
        return F.normalize(out.float(), dim=-1)

    __call__ = encode_images


def build_encoder(encoder: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A feature extractor from ``None``/``'pixels'``, an object or callable, or a dict with ``type`` one of
    ``'PixelEncoder'``, ``'OpenCLIPEncoder'``, ``'TimmEncoder'``."""
    if encoder is None or encoder == 'pixels':
        return PixelEncoder()
    if isinstance(encoder, dict):
        kinds = dict(PixelEncoder=PixelEncoder, OpenCLIPEncoder=OpenCLIPEncoder, TimmEncoder=TimmEncoder)
        cfg = dict(encoder)
        kind = cfg.pop('type', None)
        if kind not in kinds:
            raise ValueError(f'feature extractor type {kind!r} is unknown; use one of {sorted(kinds)}')
        return kinds[kind](**cfg)
    if callable(encoder) or hasattr(encoder, 'encode_images'):
        return encoder
    raise TypeError(f'cannot use {type(encoder).__name__} as a feature extractor; pass a callable, an encoder or a '
                    'dict(type=...)')


def encode(encoder: Any, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Features of ``images`` in batches (encoders with ``encode_images`` or plain callables)."""
    fn = encoder.encode_images if hasattr(encoder, 'encode_images') else encoder
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
