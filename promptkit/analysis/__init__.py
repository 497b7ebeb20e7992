"""Measurement tools for promptkit models: timing, training memory and the config-level cost report.

Nothing in the core imports this package (``import promptkit`` does not load it); ``tools/analysis/`` and the
tests do. It works for every promptkit wrapper alike: each wrapper says what input it takes through its
``dummy_inputs(batch_size)``, and :class:`~promptkit.analysis.cost.Probe` knows how a built model is called.
"""
from .cost import COLUMNS, InputSpec, Probe, measure_config, ppt, pipeline_views
from .report import markdown_report, markdown_table, write_report
from .timing import median_ms, saved_activation_bytes

__all__ = ['COLUMNS', 'InputSpec', 'Probe', 'measure_config', 'ppt', 'pipeline_views', 'markdown_report',
           'markdown_table', 'write_report', 'median_ms', 'saved_activation_bytes']
