"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .curves import TrainingCurvesHook
from .hooks import PromptCheckpointHook
from .runner_setup import check_data, setup_launcher

__all__ = ['PromptCheckpointHook', 'TrainingCurvesHook', 'check_data', 'setup_launcher']
