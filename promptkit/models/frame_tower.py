"""``FrameTower``: an image tower (open_clip visual tower or timm ViT) run on every frame of a clip, as an mmaction2
backbone, for image-to-video transfer (ST-Adapter's setting)."""
from __future__ import annotations

import os.path as osp
from copy import deepcopy

from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..checkpoint import CheckpointError
from ..core import frames
from ..registry import MODELS

__all__ = ['FrameTower', 'TOWERS']

#: The image-tower libraries a FrameTower can build.
TOWERS = ('open_clip', 'timm')


@MODELS.register_module()
class FrameTower(BaseModule):
    """Runs a frozen-able image tower on each frame of a (B, C, T, H, W) clip as B·T images, as ST-Adapter does.

    Each frame goes through the tower on its own (no temporal position embedding, no attention across frames); the
    per-frame class tokens after the last block are averaged over T, then the tower's final norm is applied
    (open_clip's ``ln_post``; timm's ``fc_norm`` when it has one, else ``norm``). CLIP's ``proj`` and timm's head
    are not used. The output (B, C) feeds an mmaction2 head, e.g. ``TimeSformerHead`` (dropout, then a linear
    layer), inside ``Recognizer3D``: the head of the official ST-Adapter code.

    Prompts, freezing and artifacts come from wrapping it in :class:`~promptkit.PromptedBackbone` (the one wrapper
    path of every mmaction2 backbone): its host (:class:`~promptkit.hosts.frame_tower.FrameTowerHost`) delegates
    to the inner tower's host and reports the sites with layout ``'frames'``; the forward publishes T with
    :func:`promptkit.core.frames`, so temporal strategies (``STAdapter``) can regroup the B·T frames into clips.
    Per-frame strategies (VPT, APT, VAPT, ApproxPrompt) see ordinary image batches.

    Weights come from local files only: an open_clip CLIP checkpoint (read by ``open_clip.create_model``; only the
    visual tower is kept) or timm weights (any format :func:`~promptkit.weights.load_timm_weights`
    reads, including a promptkit classifier checkpoint; the classifier head is dropped).

    Args:
        tower: ``'open_clip'`` or ``'timm'``.
        model_name: The architecture: an open_clip model name (``'ViT-B-16'``) or a timm one
            (``'vit_base_patch16_224'``). Hub names are refused.
        pretrained: Local weights file. Defaults to None (the library's random init).
        half: Keep the tower in float16, as the official ST-Adapter code keeps frozen CLIP (its final norm stays
            float32 and the output is float32). Meant for a frozen tower on GPU, with strategies that cast their
            input (``STAdapter``) or under ``--amp``. Defaults to False.
        model_cfg: For open_clip: a model config (a ``model_configs/*.json`` content) registered as ``model_name``
            first, for architectures open_clip does not ship. Defaults to None.
        init_cfg: MMEngine init config. Defaults to None.
        **model_kwargs: Passed to ``open_clip.create_model`` or ``timm.create_model`` (``img_size``, ``depth``, ...).

    Examples:
        >>> backbone = dict(type='promptkit.PromptedBackbone',
        ...                 backbone=dict(type='promptkit.FrameTower', tower='open_clip', model_name='ViT-B-16',
        ...                               pretrained='checkpoints/ViT-B-16_openai.pt'),
        ...                 prompt=dict(type='STAdapter', width=384, positions=('mlp',)))
    """

    def __init__(self, tower: str, model_name: str, pretrained: str | None = None, half: bool = False,
                 model_cfg: dict | None = None, init_cfg: dict | None = None, **model_kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if tower not in TOWERS:
            raise ValueError(f'FrameTower: tower must be one of {TOWERS}, got {tower!r}')
        if model_name.startswith(('hf-hub:', 'hf_hub:')):
            raise ValueError(f'FrameTower: {model_name!r} is a hub name; promptkit never downloads: give the '
                             'architecture name and point pretrained= at a local weights file')
        if pretrained is not None and not osp.isfile(pretrained):
            raise CheckpointError(f'FrameTower: pretrained={pretrained!r} is not a file; tags such as "openai" '
                                  'would download, which promptkit never does: point it at a local checkpoint')
        if model_cfg is not None and tower != 'open_clip':
            raise ValueError("FrameTower: model_cfg is for tower='open_clip'; timm takes its settings as keywords")
        self.kind, self.model_name, self.pretrained, self.half = tower, model_name, pretrained, half
        if tower == 'open_clip':
            self.tower = self._open_clip(model_name, pretrained, model_cfg, model_kwargs)
            self.norm_name = 'ln_post'
            self.embed_dims = self.tower.transformer.width
        else:
            self.tower = self._timm(model_name, pretrained, model_kwargs)
            has_fc_norm = not isinstance(getattr(self.tower, 'fc_norm', None), (nn.Identity, type(None)))
            self.norm_name = 'fc_norm' if has_fc_norm else 'norm'
            self.embed_dims = self.tower.embed_dim
        if half:
            self.tower.half()
            self.final_norm.float()  # the official code runs LayerNorm in float32

    @staticmethod
    def _open_clip(model_name: str, pretrained: str | None, model_cfg: dict | None, kwargs: dict) -> nn.Module:
        import open_clip

        if model_cfg is not None:
            open_clip.factory._MODEL_CONFIGS[model_name] = deepcopy(dict(model_cfg))
        clip = open_clip.create_model(model_name, pretrained=pretrained, **kwargs)
        visual = clip.visual
        if not hasattr(visual, 'transformer') or not hasattr(visual, 'forward_intermediates'):
            raise TypeError(f'FrameTower: the visual tower of {model_name!r} is a {type(visual).__name__}; only '
                            'open_clip ViT towers (open_clip.transformer.VisionTransformer) are supported')
        if getattr(visual, 'attn_pool', None) is not None:
            raise TypeError(f'FrameTower: {model_name!r} has an attentional pooler; FrameTower pools the class token')
        if pretrained:
            print_log(f'promptkit: FrameTower loaded the open_clip {model_name} visual tower from {pretrained}',
                      logger='current')
        return visual  # the text tower goes with `clip`

    @staticmethod
    def _timm(model_name: str, pretrained: str | None, kwargs: dict) -> nn.Module:
        import timm

        from ..weights import load_timm_weights
        vit = timm.create_model(model_name, pretrained=False, **kwargs)
        if not hasattr(vit, 'forward_intermediates') or getattr(vit, 'cls_token', None) is None:
            raise TypeError(f'FrameTower: timm {model_name!r} ({type(vit).__name__}) has no class token; FrameTower '
                            'averages per-frame class tokens, so it needs a ViT built with class_token=True')
        if pretrained:
            report = load_timm_weights(vit, pretrained, load_head=False)
            print_log(f'promptkit: FrameTower loaded {report["loaded"]} tensors from {pretrained} into timm '
                      f'{model_name} (head dropped)', logger='current')
        vit.reset_classifier(0)  # the task head lives in the recognizer
        return vit

    @property
    def final_norm(self) -> nn.Module:
        """The tower's own final norm, applied to the frame-averaged class token."""
        return self.tower.get_submodule(self.norm_name)

    def class_tokens(self, images: Tensor) -> Tensor:
        """The class token after the last block, before the final norm: (N, C) for images (N, 3, H, W)."""
        if self.kind == 'open_clip':
            out = self.tower.forward_intermediates(images, indices=1, output_fmt='NLC', output_extra_tokens=True,
                                                   intermediates_only=True)
            return out['image_intermediates_prefix'][-1][:, 0]  # prefix tokens (N, 1, C) -> (N, C)
        _, prefix = self.tower.forward_intermediates(images, indices=1, return_prefix_tokens=True, norm=False,
                                                     output_fmt='NLC', intermediates_only=True)[-1]
        return prefix[:, 0]  # (N, num_prefix_tokens, C) -> class token (N, C)

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, C) of clips (B, 3, T, H, W)."""
        if x.dim() != 5:
            raise ValueError(f'FrameTower takes clips (B, C, T, H, W), got a tensor of shape {tuple(x.shape)}; '
                             "use FormatShape(input_format='NCTHW') in the pipeline")
        B, C, T, H, W = x.shape
        images = x.transpose(1, 2).reshape(B * T, C, H, W)  # (B·T, C, H, W): the T frames of a clip are contiguous
        dtype = self.tower.patch_embed.proj.weight.dtype if self.kind == 'timm' else self.tower.conv1.weight.dtype
        with frames(T):
            cls = self.class_tokens(images.to(dtype))  # (B·T, C)
        cls = cls.reshape(B, T, -1).float().mean(dim=1)  # (B, C): average over the frames, in float32
        return self.final_norm(cls)  # float32 (the norm is kept float32 when half=True)

    def init_weights(self) -> None:
        """Nothing to do: the tower is loaded or initialised at build time (a re-init would undo a load)."""
        self._is_init = True
