"""MMEngine pieces: runner set-up shared by the tools, and hooks."""
from .hooks import PromptCheckpointHook, frozen_fingerprint, trained_state_dict
from .runner_setup import check_data, setup_launcher
from .sample_hook import SampleGridHook, image_grid

__all__ = ['PromptCheckpointHook', 'frozen_fingerprint', 'trained_state_dict', 'check_data', 'setup_launcher',
           'SampleGridHook', 'image_grid']
