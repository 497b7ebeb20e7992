"""Datasets registered in promptkit's ``DATASETS`` registry."""
from .demo import DemoMotionDataset, ensure_motion_dataset, generate_motion_dataset
from .image_list import ImageFolderDataset, ImageListDataset
from .digits import DigitsDataset, ensure_digits_dataset, generate_digits_dataset
from .text_to_image import CaptionedImageFolder, DreamBoothDataset
from .captioned_digits import CaptionedDigitsDataset, digit_caption, load_captioned_digits

__all__ = ['DemoMotionDataset', 'ensure_motion_dataset', 'generate_motion_dataset', 'ImageListDataset',
           'ImageFolderDataset', 'DigitsDataset', 'ensure_digits_dataset', 'generate_digits_dataset',
           'CaptionedImageFolder', 'DreamBoothDataset',
           'CaptionedDigitsDataset', 'digit_caption', 'load_captioned_digits']
