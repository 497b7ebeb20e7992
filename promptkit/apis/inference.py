"""Inference with a trained config: ``promptkit-infer CONFIG WEIGHTS INPUT...`` (``tools/infer.py``).

The model is built from the config, frozen base included (its ``pretrained=`` path), then the trained weights are
loaded with the same base check as training and testing: a promptkit checkpoint or ``prompts.safetensors`` whose
fingerprint does not match the frozen base built here is refused. Videos go through mmaction2's
``inference_recognizer`` with the config's test pipeline; images through the config's image test pipeline.
"""
from __future__ import annotations

import argparse
import os.path as osp
import types
from typing import Sequence

import torch
from mmengine.config import Config, DictAction
from torch import nn

__all__ = ['build_model', 'load_weights', 'infer', 'main']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def _load_config(config: str | Config, cfg_options: dict | None = None) -> Config:
    from ..config_files import resolve_config
    cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(config: str | Config, cfg_options: dict | None = None, device: str = 'cpu') -> nn.Module:
    """Build the config's model, frozen base weights loaded from its ``pretrained=`` paths, in eval mode.

    Unlike mmaction2's ``init_recognizer``, the backbone's ``pretrained`` is kept: for promptkit it is the frozen base
    the trained tensors belong to.
    """
    import promptkit  # noqa: F401  (registries, drn stub)
    from mmengine.registry import MODELS, init_default_scope
    cfg = _load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    return model.to(device).eval()


def load_weights(model: nn.Module, weights: str) -> dict:
    """Load a checkpoint (``.pth``) or a ``prompts.safetensors`` onto ``model``, checking the frozen base.

    Returns:
        What was loaded: ``dict(kind='prompts'|'promptkit checkpoint'|'full checkpoint', path=...)``.

    Raises:
        FileNotFoundError: No such file.
        RuntimeError: The weights were trained on another frozen base, or lack tensors this model trains.
    """
    if not osp.isfile(weights):
        raise FileNotFoundError(f'weights {weights} do not exist; pass a checkpoint written by training '
                                '(<work_dir>/epoch_*.pth, best_*.pth) or <work_dir>/prompts.safetensors')
    if weights.endswith('.safetensors'):
        from ..artifacts import load_prompts
        load_prompts(model, weights)
        return dict(kind='prompts', path=weights)
    from .._compat import allow_mmengine_checkpoints
    from ..engine.hooks import PromptCheckpointHook
    allow_mmengine_checkpoints()
    checkpoint = torch.load(weights, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get('meta', {}).get('promptkit') is None:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, weights, map_location='cpu', strict=True, logger='current')
        return dict(kind='full checkpoint', path=weights)
    # The check tools/train.py and tools/test.py run when they load a checkpoint, on a stand-in for the runner.
    state = checkpoint['state_dict']
    PromptCheckpointHook().after_load_checkpoint(types.SimpleNamespace(model=model), checkpoint)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f'{weights} holds tensors this model does not have: {result.unexpected_keys[:10]}; it was '
                           'trained with another config')
    return dict(kind='promptkit checkpoint', path=weights)


def _class_names(cfg: Config, labels: str | Sequence[str] | None) -> list[str] | None:
    """Names from ``labels`` (a file with one per line, or a list), else what the config says, else None."""
    if labels is None:
        names = cfg.model.get('classnames') or cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'metainfo', {}).get('classes')
        if names is None:
            return None
        labels = names
    if isinstance(labels, str):
        if not osp.isfile(labels):
            raise FileNotFoundError(f'label file {labels} does not exist; it holds one class name per line, in '
                                    'label order')
        with open(labels) as f:
            return [line.strip() for line in f if line.strip()]
    return [str(n) for n in labels]


def _pipeline(cfg: Config) -> list:
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:  # RepeatDataset and other wrappers
        dataset = dataset['dataset']
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise KeyError(f'{cfg.filename}: no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    return pipeline


def infer(config: str | Config, weights: str | None, inputs: Sequence[str], topk: int = 5,
          labels: str | Sequence[str] | None = None, device: str = 'cpu',
          cfg_options: dict | None = None) -> list[dict]:
    """Run videos or images through a trained model and return the top-k classes of each.

    Args:
        config: Config file or ``promptkit::`` name (the one the weights were trained with).
        weights: A training checkpoint (``.pth``) or a ``prompts.safetensors``; None uses the config's model as
            built (its frozen base and initial prompts).
        inputs: Video files (video models, mmaction2 recognizers) or image files (image classifiers).
        topk: How many classes to report per input. Defaults to 5.
        labels: Class names (a file, one per line, or a list); defaults to the names the config gives, if any.
        device: Torch device. Defaults to ``'cpu'``.
        cfg_options: Config overrides, as ``--cfg-options`` (e.g. ``{'model.backbone.pretrained': 'base.pth'}``).

    Returns:
        Per input: ``dict(input=path, scores=(K,) tensor, topk=[(class index, name or None, score), ...])``.
    """
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope

    from ..models import PromptedImageClassifier
    model = build_model(config, cfg_options, device)
    if weights is not None:
        load_weights(model, weights)
    cfg = model.cfg
    names = _class_names(cfg, labels)
    images = isinstance(model, PromptedImageClassifier)
    # Image pipelines of promptkit configs resolve in promptkit's scope (as the image data sets build them).
    with DefaultScope.overwrite_default_scope('promptkit' if images else cfg.get('default_scope', 'mmaction')):
        pipeline = Compose(_pipeline(cfg))
    results = []
    for path in inputs:
        if not osp.isfile(path):
            raise FileNotFoundError(f'input {path} does not exist')
        if path.lower().endswith(IMAGE_EXTENSIONS) != images:
            raise ValueError(f'{path} is {"an image" if not images else "not an image"}, but the model of '
                             f'{cfg.filename} takes {"images" if images else "videos"}')
        if images:
            with torch.no_grad():
                sample = model.test_step(pseudo_collate([pipeline(dict(img_path=path))]))[0]
        else:
            from mmaction.apis import inference_recognizer
            sample = inference_recognizer(model, path, pipeline)
        scores = sample.pred_score.detach().float().cpu()
        if names is not None and len(names) != scores.numel():
            raise ValueError(f'{len(names)} class names for a model with {scores.numel()} classes; the label file '
                             'must list every class, in label order')
        values, indices = scores.topk(min(topk, scores.numel()))
        top = [(int(i), names[int(i)] if names else None, float(v)) for v, i in zip(values, indices)]
        results.append(dict(input=path, scores=scores, topk=top))
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Top-k classes of videos or images under a trained prompted model')
    parser.add_argument('config', help='config file, or a packaged config such as promptkit::apt/videomae_demo.py')
    parser.add_argument('weights', help='checkpoint (.pth) or prompts.safetensors of that config')
    parser.add_argument('inputs', nargs='+', help='video or image files')
    parser.add_argument('--labels', help='class names, one per line in label order (default: the config\'s)')
    parser.add_argument('--topk', type=int, default=5, help='classes to print per input')
    parser.add_argument('--device', default='cuda:0' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. model.backbone.pretrained=base.pth)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    for result in infer(args.config, args.weights, args.inputs, topk=args.topk, labels=args.labels,
                        device=args.device, cfg_options=args.cfg_options):
        print(result['input'])
        for index, name, score in result['topk']:
            print(f'  {score:.4f}  {name if name is not None else index}')


if __name__ == '__main__':
    main()
