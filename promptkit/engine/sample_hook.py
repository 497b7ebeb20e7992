"""``SampleGridHook``: text-to-image samples every N iterations, as PNG grids in the work dir and the visualizer."""
from __future__ import annotations

import os
import os.path as osp
from typing import Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """(B, C, H, W) floats in [0, 1] to one uint8 (H', W', C) grid (torchvision's ``make_grid``)."""
    from torchvision.utils import make_grid
    nrow = nrow or max(1, int(len(images) ** 0.5 + 0.999))
    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)  # (C, H', W')
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    return (grid * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()  # (H', W', 3)


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Sample the model's captions every ``interval`` training iterations (and after training) on the main process.

    Each call writes ``<work_dir>/<out_dir>/iter_<n>.png`` (one row per caption, ``num_images`` seeds each) and adds
    the grid to MMEngine's visualizer (``add_image``: the local backend's ``vis_data`` folder, TensorBoard when
    configured). Sampling uses the model's ``sample`` (its sampler config), each caption's images drawn from one
    generator seeded with ``seed``, so grids of successive iterations start from the same noise.

    Args:
        captions: The captions to sample.
        interval: Iterations between grids. Defaults to 100.
        num_images: Images per caption. Defaults to 2.
        seed: First seed. Defaults to 0.
        num_inference_steps: Overrides the sampler's step count (fewer is faster). Defaults to None.
        out_dir: Sub-folder of the work dir. Defaults to ``'samples'``.
    """

    priority = 'LOW'

    def __init__(self, captions: Sequence[str], interval: int = 100, num_images: int = 2, seed: int = 0,
                 num_inference_steps: int | None = None, out_dir: str = 'samples') -> None:
        if not captions:
            raise ValueError('SampleGridHook needs at least one caption')
        self.captions, self.interval, self.num_images = list(captions), interval, num_images
        self.seed, self.steps, self.out_dir = seed, num_inference_steps, out_dir

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.write(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        if runner.iter % self.interval:
            self.write(runner, runner.iter)

    def write(self, runner, step: int) -> str | None:
        if not is_main_process():
            return None
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            rows = [model.sample([c] * self.num_images, num_inference_steps=self.steps, seed=self.seed)
                    for c in self.captions]
        finally:
            model.train(was_training)
        grid = image_grid(torch.cat(rows), nrow=self.num_images)
        folder = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'iter_{step}.png')
        from PIL import Image
        Image.fromarray(grid.numpy()).save(path)
        runner.visualizer.add_image('samples', grid.numpy(), step=step)
        runner.logger.info(f'promptkit: sample grid written to {path}')
        return path
