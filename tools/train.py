"""Train a prompted model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] ...``.

A thin wrapper around ``promptkit.cli.train`` (installed as ``promptkit-train``); flags follow mmaction2's.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from promptkit.cli.train import main  # noqa: E402

if __name__ == '__main__':
    main()
