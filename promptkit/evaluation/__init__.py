"""Metrics registered in promptkit's ``METRICS`` (configs name them ``'promptkit.<Name>'``)."""
from .confusion import ConfusionMatrixReport

__all__ = ['ConfusionMatrixReport']
