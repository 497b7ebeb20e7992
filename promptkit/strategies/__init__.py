"""Prompt strategies, one file per method, each registered in ``promptkit.registry.PROMPTS``."""
from .adaptive_prompt import AdaptivePrompt
from .approx_prompt import ApproxPrompt
from .attention_prompt import AttentionPrompt
from .base import PromptStrategy, TokenPrompt
from .deep_prompt import DeepPrompt, ShallowPrompt
from .st_adapter import STAdapter

__all__ = ['PromptStrategy', 'TokenPrompt', 'AttentionPrompt', 'DeepPrompt', 'ShallowPrompt', 'AdaptivePrompt', 'ApproxPrompt',
           'STAdapter']
