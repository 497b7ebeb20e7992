"""Test a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--dump preds.pkl] ...``.

A thin wrapper around ``promptkit.cli.test`` (installed as ``promptkit-test``); flags follow mmaction2's.
CHECKPOINT is an MMEngine ``.pth`` or a ``prompts.safetensors`` export.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from promptkit.cli.test import main  # noqa: E402

if __name__ == '__main__':
    main()
