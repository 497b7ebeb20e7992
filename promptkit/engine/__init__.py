"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .curves import TrainingCurvesHook
from .hooks import PromptCheckpointHook
from .optim import TrainableOptimWrapperConstructor
from .resume import ExactResumeHook, ResumableSampler
from .runner_setup import check_data, setup_launcher
from .sample_hook import SampleGridHook, image_grid
from .validate import SampleGuardHook, validate_data

__all__ = ['PromptCheckpointHook', 'TrainingCurvesHook', 'check_data', 'setup_launcher', 'SampleGuardHook',
           'validate_data', 'TrainableOptimWrapperConstructor', 'ExactResumeHook', 'ResumableSampler',
           'SampleGridHook', 'image_grid']
