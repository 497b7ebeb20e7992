"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .curves import TrainingCurvesHook
from .hooks import PromptCheckpointHook
from .runner_setup import check_data, setup_launcher
from .sample_hook import SampleGridHook, image_grid

__all__ = ['PromptCheckpointHook', 'TrainingCurvesHook', 'check_data', 'setup_launcher', 'SampleGridHook',
           'image_grid']
