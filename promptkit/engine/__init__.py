"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .curves import TrainingCurvesHook
from .hooks import PromptCheckpointHook, frozen_fingerprint, trained_state_dict
from .runner_setup import check_data, setup_launcher

__all__ = ['PromptCheckpointHook', 'TrainingCurvesHook', 'frozen_fingerprint', 'trained_state_dict', 'check_data',
           'setup_launcher']
