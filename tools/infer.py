"""Top-k classes of videos or images: ``python tools/infer.py CONFIG WEIGHTS INPUT... [--labels FILE] [--topk K]``.

WEIGHTS is a checkpoint of tools/train.py or its ``prompts.safetensors``; the frozen base comes from the config's
``pretrained=`` path and is checked against the weights' fingerprint. Installed, the same is ``promptkit-infer``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from promptkit.apis.inference import main  # noqa: E402

if __name__ == '__main__':
    main()
