"""Workarounds for the pinned stack, each in one place. Imported first by ``promptkit/__init__.py``."""
import sys
import types
import warnings

# mmcv-lite has no compiled ops; its transformer module warns about that on import. promptkit needs none of them.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def stub_mmaction_drn() -> None:
    """Stub ``mmaction.models.localizers.drn``, which the mmaction2 1.2.0 wheel lacks (upstream issue 2714).

    ``mmaction.models.localizers`` imports it unconditionally, so without the stub ``import mmaction.models``
    fails. The stub only provides a ``DRN`` that refuses to be built. It must run before the first import of
    ``mmaction.models``; forked data-loader workers inherit it.
    """
    if 'mmaction.models.localizers.drn' in sys.modules:
        return
    try:  # A future wheel that ships the module needs no stub.
        import importlib.util
        if importlib.util.find_spec('mmaction') is None:
            return
        import mmaction
        from pathlib import Path
        if (Path(mmaction.__file__).parent / 'models' / 'localizers' / 'drn').is_dir():
            return
    except ImportError:
        return

    class DRN:  # noqa: D401 - placeholder
        def __init__(self, *args, **kwargs):
            raise ImportError('mmaction2 1.2.0 ships without mmaction.models.localizers.drn (issue 2714); '
                              'promptkit stubs it, so the DRN localizer cannot be built.')

    pkg = types.ModuleType('mmaction.models.localizers.drn')
    pkg.__path__ = []
    mod = types.ModuleType('mmaction.models.localizers.drn.drn')
    mod.DRN = pkg.DRN = DRN
    sys.modules[pkg.__name__] = pkg
    sys.modules[mod.__name__] = mod


def skip_mmaction_multimodal() -> None:
    """Keep mmaction2 1.2.0 from importing its VindLU models, which need transformers 4.x internals.

    ``mmaction.models.multimodal`` imports VindLU whenever ``transformers>=4.28`` is installed, and VindLU imports
    ``apply_chunking_to_forward`` from ``transformers.modeling_utils``, which transformers 5 removed: with the
    transformers that diffusers' pipelines need, ``import mmaction.models`` fails. promptkit uses no VindLU model, so
    mmaction2 is told the multimodal dependency is absent (its own fallback registers placeholders that explain
    themselves when built). Must run before the first import of ``mmaction.models``.
    """
    try:
        import importlib.util
        if importlib.util.find_spec('mmaction') is None or 'mmaction.models' in sys.modules:
            return
        import mmaction.utils.dependency as dependency
    except ImportError:
        return
    from importlib.metadata import PackageNotFoundError, version
    try:
        major = int(version('transformers').split('.')[0])
    except (PackageNotFoundError, ValueError):
        return
    if major >= 5:
        dependency.WITH_MULTIMODAL = False


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` (the default since torch 2.6) read MMEngine checkpoints.

    mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` and its checkpoints hold a ``HistoryBuffer``,
    numpy arrays and dtypes; ``HistoryBuffer`` pickles its statistics as ``getattr(HistoryBuffer, 'mean')``.
    We allow-list exactly those globals, with a ``getattr`` stand-in that serves only those four look-ups, plus
    the ``argparse.Namespace`` VideoMAE checkpoints store as ``args``, instead of turning weights-only off.
    """
    import argparse
    import pickle

    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    from numpy._core.multiarray import _reconstruct, scalar

    dtypes = ('float64', 'float32', 'float16', 'int64', 'int32', 'int8', 'uint8', 'bool')
    def history_buffer_getattr(obj, name: str):
        if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
            return getattr(obj, name)
        raise pickle.UnpicklingError(f'refusing getattr({obj!r}, {name!r}) in a weights-only load')

    torch.serialization.add_safe_globals(
        [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, argparse.Namespace, bytes,
         (history_buffer_getattr, 'builtins.getattr')]
        + [type(np.dtype(t)) for t in dtypes] + [np.dtype(t).type for t in dtypes])
