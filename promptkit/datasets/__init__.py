"""Datasets registered in promptkit's ``DATASETS`` registry."""
from .demo import DemoMotionDataset, ensure_motion_dataset, generate_motion_dataset

__all__ = ['DemoMotionDataset', 'ensure_motion_dataset', 'generate_motion_dataset']
