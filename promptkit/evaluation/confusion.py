"""A confusion matrix and per-class accuracy written as files by any evaluation (``tools/test.py``, validation)."""
from __future__ import annotations

import csv
import os
import os.path as osp

from mmaction.evaluation.metrics import ConfusionMatrix
from mmengine.logging import MMLogger, print_log

from ..registry import METRICS

__all__ = ['ConfusionMatrixReport']


@METRICS.register_module()
class ConfusionMatrixReport(ConfusionMatrix):
    """mmaction2's ``ConfusionMatrix``, reported as files instead of a tensor-valued metric.

    Writes, into ``out_dir``, ``confusion_matrix.csv`` (rows: true class, columns: predicted class),
    ``per_class_accuracy.csv`` (class, correct, total, accuracy) and ``confusion_matrix.png`` (mmaction2's plot),
    with the class names of the data set (``metainfo['classes']``) when it has them. The metric it returns is a
    number, ``confusion/mean_class_accuracy``, so logs and ``test_metrics.json`` stay scalar.

    Args:
        out_dir: Folder of the files. Defaults to None: the folder of the current run's log
            (``<work_dir>/<timestamp>/``), so that no earlier run's files are overwritten.
        num_classes: See mmaction2's ``ConfusionMatrix`` (needed only without prediction scores).
        collect_device: See ``BaseMetric``. Defaults to ``'cpu'``.
        prefix: Defaults to ``'confusion'``.

    Examples:
        >>> test_evaluator = [dict(type='AccMetric'), dict(type='promptkit.ConfusionMatrixReport')]
    """

    default_prefix = 'confusion'

    def __init__(self, out_dir: str | None = None, num_classes: int | None = None, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(num_classes=num_classes, collect_device=collect_device, prefix=prefix)
        self.out_dir = out_dir

    def _folder(self) -> str:
        if self.out_dir is not None:
            return self.out_dir
        log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
        return osp.dirname(log_file) if log_file else os.getcwd()

    def compute_metrics(self, results: list) -> dict:
        matrix = super().compute_metrics(results)['result']  # (K, K) counts, rows = true class
        k = matrix.shape[0]
        classes = list((self.dataset_meta or {}).get('classes') or [])
        names = [str(c) for c in classes] if len(classes) == k else [str(i) for i in range(k)]
        total = matrix.sum(dim=1)
        correct = matrix.diagonal()
        acc = correct.double() / total.clamp(min=1).double()
        folder = self._folder()
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, 'confusion_matrix.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['true \\ predicted', *names])
            writer.writerows([name, *row] for name, row in zip(names, matrix.tolist()))
        with open(osp.join(folder, 'per_class_accuracy.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['class', 'correct', 'total', 'accuracy'])
            writer.writerows([n, int(c), int(t), f'{a:.4f}'] for n, c, t, a in zip(names, correct, total, acc))
        import matplotlib.pyplot as plt
        fig = ConfusionMatrix.plot(matrix, include_values=k <= 30, classes=names, show=False)
        fig.savefig(osp.join(folder, 'confusion_matrix.png'), dpi=100, bbox_inches='tight')
        plt.close(fig)
        print_log(f'promptkit: confusion matrix and per-class accuracy written to {folder}', logger='current')
        present = total > 0  # classes absent from the evaluation set do not count
        return dict(mean_class_accuracy=float(acc[present].mean()) if bool(present.any()) else 0.0)
