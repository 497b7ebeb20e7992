"""Convert an original VideoMAE checkpoint into an mmaction2 recognizer checkpoint (usable as ``load_from``).

Usage::

    python tools/convert_videomae.py SRC DST [--num-classes K] [--trust-pickle]

The output is ``{'state_dict': {'backbone.*': ..., 'cls_head.fc_cls.weight/bias': ...}, 'meta': {...}}`` saved
with ``torch.save``. The classification head is kept only if SRC has one and, with ``--num-classes``, only if its
number of classes is K. Pre-training checkpoints lose their decoder, mask token and encoder ``norm``.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from promptkit.artifacts import fingerprint
from promptkit.checkpoint import CheckpointError, read_state_dict
from promptkit.weights import videomae_to_mmaction


def convert(src: str, dst: str, num_classes: int | None = None, trust_pickle: bool = False) -> dict:
    """Convert ``src`` and write ``dst``.

    Args:
        src: An original VideoMAE (or mmaction2) checkpoint.
        dst: Where to write the mmaction2 checkpoint; parent folders are created.
        num_classes: The recognizer's number of classes; a head with another number is dropped.
        trust_pickle: Read ``src`` with ``weights_only=False`` (only for files you trust).

    Returns:
        The written checkpoint.
    """
    backbone, extras = videomae_to_mmaction(read_state_dict(src, trust_pickle=trust_pickle))
    if not backbone:
        raise CheckpointError(f'{src!r} does not look like a VideoMAE / mmaction2 ViT checkpoint: no backbone tensors')
    head = extras['head']
    if head and num_classes is not None and head['weight'].shape[0] != num_classes:
        print(f'note: dropping the head ({head["weight"].shape[0]} classes) since --num-classes is {num_classes}; '
              'the recognizer\'s cls_head keeps its initialisation')
        head = {}
    elif not head and num_classes is not None:
        print('note: the checkpoint has no classification head; the recognizer\'s cls_head keeps its initialisation')
    state = {f'backbone.{k}': v.detach().cpu().contiguous() for k, v in backbone.items()}
    state.update({f'cls_head.fc_cls.{k}': v.detach().cpu().contiguous() for k, v in head.items()})
    meta = {'source': os.path.abspath(src), 'source_format': extras['format'], 'ignored': extras['ignored'],
            'backbone_fingerprint': fingerprint(backbone), 'converted_by': 'promptkit tools/convert_videomae.py'}
    checkpoint = {'state_dict': state, 'meta': meta}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(checkpoint, dst)
    head_text = f'head {tuple(head["weight"].shape)}' if 'weight' in head else 'no head'
    print(f'{src} ({extras["format"]}) -> {dst}: {len(backbone)} backbone tensors, {head_text}, '
          f'{len(extras["ignored"])} keys ignored, backbone fingerprint {meta["backbone_fingerprint"]}')
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='original VideoMAE checkpoint (.pth / .safetensors)')
    parser.add_argument('dst', help='output mmaction2 checkpoint')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='classes of the target recognizer; a head with another number is dropped')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='read SRC with weights_only=False (runs pickled code: only for files you trust)')
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.dst, args.num_classes, args.trust_pickle)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
