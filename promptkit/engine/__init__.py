"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .curves import TrainingCurvesHook
from .hooks import PromptCheckpointHook
from .runner_setup import check_data, setup_launcher
from .resume import ExactResumeHook, ResumableSampler
from .optim import TrainableOptimWrapperConstructor
from .validate import SampleGuardHook, validate_data

__all__ = ['PromptCheckpointHook', 'TrainingCurvesHook', 'check_data', 'setup_launcher',
           'SampleGuardHook', 'validate_data', 'TrainableOptimWrapperConstructor',
           'ExactResumeHook', 'ResumableSampler']
