"""Metrics in promptkit's ``METRICS`` (configs name them ``'promptkit.<Name>'``): evaluators for generated images (MMEngine metrics in promptkit's ``METRICS``), weights from paths only.

- ``ClipScore`` (CLIP-T), ``ClipImageSimilarity`` (CLIP-I), ``DinoSimilarity`` (DINO), ``FrechetDistance`` (in a
  given feature extractor), ``Drift`` (base vs tuned images of unrelated captions, 1 − cosine);
- ``DigitsJudge`` / ``DigitsJudgeMetric``: the CPU demo's judge (content accuracy, domain rate);
- ``ConfusionMatrixReport``: mmaction2's confusion matrix written to files by test runs.

Each metric reads the generated image of a data sample from ``image_key`` (default ``'pred_image'``, what
``PromptedTextToImage`` predicts: a tensor (C, H, W) float in [0, 1] or uint8) and, where it needs them, the
caption (``caption``), the label (``gt_label``) and the base model's image (``base_image``).
"""
from .clip_score import ClipScore
from .confusion import ConfusionMatrixReport
from .digits_judge import DigitsJudge, DigitsJudgeMetric
from .drift import Drift, drift
from .frechet import FrechetDistance, frechet_distance
from .image_similarity import ClipImageSimilarity, DinoSimilarity, ReferenceSimilarity
from .images import OpenCLIPEncoder, PixelEncoder, TimmEncoder, build_encoder, to_unit_images

__all__ = ['ConfusionMatrixReport', 'ClipScore', 'ClipImageSimilarity', 'DinoSimilarity', 'ReferenceSimilarity', 'FrechetDistance',
           'frechet_distance', 'Drift', 'drift', 'DigitsJudge', 'DigitsJudgeMetric', 'OpenCLIPEncoder',
           'PixelEncoder', 'TimmEncoder', 'build_encoder', 'to_unit_images']
