"""Generate images with a prompted text-to-image model:
``python tools/generate.py CONFIG PROMPTS "caption" [--num-images N] [--steps S] [--guidance G] [--seed K]
[--out-dir DIR] [--cfg-options k=v ...]``.

PROMPTS is the ``prompts.safetensors`` (or the work dir holding it) that ``tools/train.py`` wrote, checked against
the frozen base the config builds; ``none`` samples the base model itself (e.g. DreamBooth class images).
Writes ``0000.png``, ``0001.png``, ... and ``grid.png`` into the output folder.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import promptkit  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Generate images with a prompted text-to-image model')
    parser.add_argument('config', help='the training config of the prompts')
    parser.add_argument('prompts', help="prompts.safetensors, the folder holding it, or 'none' for the base model")
    parser.add_argument('caption', help='the text to generate from')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--steps', type=int, default=None, help='sampling steps (default: the config sampler)')
    parser.add_argument('--guidance', type=float, default=None, help='classifier-free guidance scale')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=4, help='images generated at once')
    parser.add_argument('--out-dir', default=None, help='default: <work_dir>/generated')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. model.pretrained=/path/to/sd)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_flush_denormal(True)
    if args.num_images < 1:
        raise ValueError(f'--num-images must be at least 1, got {args.num_images}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'promptkit'))
    from promptkit.artifacts import load_prompts
    from promptkit.engine.sample_hook import image_grid
    from promptkit.registry import MODELS
    model = MODELS.build(cfg.model)
    if args.prompts.lower() != 'none':
        path = osp.join(args.prompts, 'prompts.safetensors') if osp.isdir(args.prompts) else args.prompts
        load_prompts(model, path)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.to(device).eval()
    out_dir = args.out_dir or osp.join(cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(
        osp.basename(args.config))[0]), 'generated')
    os.makedirs(out_dir, exist_ok=True)
    targets = [osp.join(out_dir, f'{i:04d}.png') for i in range(args.num_images)] + [osp.join(out_dir, 'grid.png')]
    taken = [t for t in targets if osp.exists(t)]
    if taken:
        raise FileExistsError(f'{taken[0]} exists; choose another --out-dir (images are never overwritten)')
    from PIL import Image
    images = []
    for start in range(0, args.num_images, args.batch_size):
        n = min(args.batch_size, args.num_images - start)
        images.append(model.sample([args.caption] * n, num_inference_steps=args.steps,
                                   guidance_scale=args.guidance, seed=args.seed + start).cpu())
    images = torch.cat(images)
    for path, img in zip(targets, images):
        arr = (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
    Image.fromarray(image_grid(images).numpy()).save(targets[-1])
    print(f'wrote {len(images)} images and grid.png to {out_dir}')


if __name__ == '__main__':
    main()
