from .functional import (
    class_knn_scores,
    compute_osr_metrics,
    faiss_gpu_available,
    fit_tied_gaussian,
    fpr_at_95_tpr,
    knn_scores,
    l2_normalize,
    logit_scores,
    mahalanobis_scores,
    openood_metrics,
    oscr,
    oscr_arpl,
    oscr_curve,
)
from .keys import (
    MetricKey,
    build_metric_key,
    parse_metric_key,
    split_metric_key,
    split_ood_subset,
)
from .metrics import OSR_SCORES, OSRMetric
from .report import (
    METRICS_FILENAME,
    PROVENANCE_KEY,
    format_osr_table,
    load_osr_metrics,
    load_osr_provenance,
    plot_osr_curves,
    save_osr_metrics,
    save_per_sample,
    write_osr_report,
)
from .scores import SCORES, BaseScore, ScoreInputError, build_score

__all__ = [
    'class_knn_scores', 'compute_osr_metrics', 'faiss_gpu_available',
    'fit_tied_gaussian', 'fpr_at_95_tpr', 'knn_scores', 'l2_normalize',
    'logit_scores', 'mahalanobis_scores', 'openood_metrics', 'oscr',
    'oscr_arpl', 'oscr_curve', 'OSRMetric', 'OSR_SCORES', 'METRICS_FILENAME',
    'PROVENANCE_KEY', 'format_osr_table', 'load_osr_metrics',
    'load_osr_provenance', 'plot_osr_curves',
    'save_osr_metrics', 'save_per_sample', 'split_metric_key',
    'split_ood_subset', 'write_osr_report', 'SCORES', 'BaseScore',
    'ScoreInputError', 'build_score', 'MetricKey', 'build_metric_key',
    'parse_metric_key'
]
