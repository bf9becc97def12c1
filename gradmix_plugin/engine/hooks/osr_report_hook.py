from typing import Dict, Optional

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...utils.provenance import collect_provenance


def image_paths(loader, num_samples: int) -> np.ndarray:
    """The ``img_path`` of every test sample in dataset order (the order of
    ``OSRMetric``'s per-sample arrays), '' for in-memory images.

    Args:
        loader (DataLoader): The test loader (not shuffled).
        num_samples (int): Rows of the per-sample arrays.

    Returns:
        np.ndarray: One string per sample.
    """
    dataset = loader.dataset
    if getattr(loader.sampler, 'shuffle', False) or len(dataset) != \
            num_samples:
        raise ValueError(
            f'the per-sample scores ({num_samples} rows) cannot be matched '
            f'to the {len(dataset)} test images: the test sampler must not '
            'shuffle (sampler=dict(type=\'DefaultSampler\', shuffle=False))')
    return np.array([
        dataset.get_data_info(i).get('img_path') or ''
        for i in range(num_samples)
    ])


@HOOKS.register_module()
class OSRReportHook(Hook):
    """Write the open-set report at the end of ``test``.

    After the test epoch, the main process writes ``osr_metrics.json``
    (the metrics with the provenance of the test set and checkpoint) and
    ``osr_metrics.md`` into ``out_dir``, the per-sample scores of the
    ``OSRMetric`` of ``test_evaluator`` as ``.npz`` with ``out`` (with the
    ``img_path`` of every sample, '' for in-memory images), and ROC,
    histogram and OSCR plots as PNG with ``show_dir``
    (:func:`gradmix_plugin.evaluation.write_osr_report`). ``OSRRunner``
    adds this hook to every config, so ``tools/test.py`` of the plugin and
    of mmpretrain write the same files; the plugin's ``tools/test.py`` sets
    ``out`` and ``show_dir`` from ``--out`` and ``--show-dir``.

    Args:
        out (str, optional): Path of the per-sample ``.npz``. Defaults to
            None (not written).
        show_dir (str, optional): Directory of the plots. Defaults to None
            (no plots).
        out_dir (str, optional): Directory of ``osr_metrics.json``.
            Defaults to None (the work dir).
    """

    priority = 'LOW'

    def __init__(self,
                 out: Optional[str] = None,
                 show_dir: Optional[str] = None,
                 out_dir: Optional[str] = None) -> None:
        self.out = out
        self.show_dir = show_dir
        self.out_dir = out_dir

    def after_test_epoch(self,
                         runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        """Write the report of the test metrics (main process only)."""
        from ...evaluation import OSRMetric, write_osr_report
        from ...evaluation.provenance import evaluation_provenance

        if not is_main_process() or metrics is None:
            return
        osr_metric = next((m for m in runner.test_evaluator.metrics
                           if isinstance(m, OSRMetric)), None)
        if osr_metric is None:
            runner.logger.warning(
                'OSRReportHook: test_evaluator has no OSRMetric; no '
                'osr_metrics.json is written')
            return
        checkpoint = runner.cfg.get('load_from', None)
        per_sample = osr_metric.last_per_sample
        if per_sample is not None and self.out:
            per_sample = dict(
                per_sample,
                img_path=image_paths(runner.test_dataloader,
                                     len(per_sample['gt_label'])))
        written = write_osr_report(
            metrics,
            per_sample,
            out_dir=self.out_dir or runner.work_dir,
            npz_path=self.out,
            show_dir=self.show_dir,
            provenance=dict(
                collect_provenance(runner.cfg, 'test_dataloader',
                                   checkpoint),
                evaluation=evaluation_provenance(
                    runner.test_dataloader.dataset, osr_metric)))
        runner.logger.info(
            'OSR report: ' + ', '.join(sorted(written.values())))
