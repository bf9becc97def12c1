import logging
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from ..functional import (
    BANK_SCORES,
    LOGIT_SCORES,
    OSR_SCORES,
    check_knn_options,
    class_knn_scores,
    compute_osr_metrics,
    knn_scores,
    l2_normalize,
    logit_scores,
    mahalanobis_scores,
)
from ..report import GROUP_KEY_PREFIX, SOURCE_KEY_PREFIX, format_osr_table

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Per-sample model outputs the metric reads.
OUTPUT_KEYS = ('feats', 'embeds', 'logits')


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@METRICS.register_module()
class OSRMetric(BaseMetric):
    """Open-set recognition and OOD detection metrics for several scores.

    Evaluates a test set made of known samples (``gt_label`` in
    ``[0, K)``) and unknown samples (any negative ``gt_label``, the
    plugin uses -1). For every score in ``scores`` it reports
    ``{score}/auroc``, ``{score}/aupr_in``, ``{score}/aupr_out``,
    ``{score}/fpr95_known_pos``, ``{score}/fpr95_ood_pos``,
    ``{score}/accuracy``, ``{score}/oscr`` and ``{score}/oscr_arpl`` (see
    :func:`gradmix_plugin.evaluation.compute_osr_metrics`; with
    ``openood_compat=True`` also ``{score}/openood_*``), plus the
    closed-set ``accuracy`` of the model, all as **percentages** like
    mmpretrain's ``Accuracy``. With the default prefix the keys read
    ``osr/class_knn/auroc``, ``osr/accuracy``, ...

    OOD benchmarks (``OODDataset``): unknown samples that carry an
    ``ood_source`` name in their data sample are also evaluated per source
    (the known samples against that source only), keys
    ``ood_{source}/{score}/{metric}``, and per group of sources (the mean
    over the group's sources, as OpenOOD averages its near / far sets),
    keys ``group_{group}/{score}/{metric}``, with the groups taken from the
    dataset's ``ood_groups`` metainfo. The keys without a source are then
    the known samples against all OOD sources together.

    Scores (higher = more known):

    - ``class_knn``: :func:`~gradmix_plugin.evaluation.class_knn_scores`
      with ``class_knn_k`` neighbours per class; its own predictions.
    - ``knn``: :func:`~gradmix_plugin.evaluation.knn_scores` with
      ``knn_k``; predictions from the logits when the model gives them,
      else from ``class_knn``.
    - ``mahalanobis``: :func:`~gradmix_plugin.evaluation.mahalanobis_scores`
      (class means and tied covariance of the bank, Lee et al. 2018); its
      own predictions (the nearest class mean).
    - ``msp``, ``mls``, ``energy``: from the logits
      (:func:`~gradmix_plugin.evaluation.logit_scores`).

    The model's closed-set predictions (``accuracy``) come from the logits
    when present, else from ``class_knn``.

    The bank scores (kNN and Mahalanobis) need the training bank, set with
    :meth:`set_bank` by
    ``OSRBankHook`` before every evaluation. A score whose inputs are
    missing (no bank, no ``logits`` or no ``embeds`` in the model outputs)
    is skipped with a logged warning, so one config serves models with and
    without a classifier; if no score at all can be computed,
    ``compute_metrics`` raises ``ValueError``. :attr:`last_per_sample` keeps
    the per-sample scores of the last evaluation on the main process.

    Args:
        scores (Sequence[str]): Scores to evaluate, from ``'class_knn'``,
            ``'knn'``, ``'mahalanobis'``, ``'msp'``, ``'mls'`` and
            ``'energy'``. Defaults to all of them.
        feature (str): Vectors of the bank scores: ``'embeds'`` (projection
            head embeddings), ``'feats'`` (backbone / neck features) or
            ``'both'`` (the concatenation of the separately L2-normalised
            feats and embeds). Defaults to ``'embeds'``.
        class_knn_k (int): Neighbours per class of ``class_knn``.
            Defaults to 3.
        knn_k (int): Neighbour of ``knn``. Defaults to 50.
        num_classes (int, optional): Number of known classes for
            ``class_knn``. Defaults to the logits width when the model gives
            logits, else ``max(bank_labels) + 1``.
        energy_temperature (float): Temperature of ``energy``.
            Defaults to 1.0.
        mahalanobis_shrinkage (str | float): Covariance shrinkage of
            ``mahalanobis``, see
            :func:`~gradmix_plugin.evaluation.fit_tied_gaussian`.
            Defaults to ``'auto'``.
        openood_compat (bool): Also report OpenOOD v1.5's FPR@95, AUROC,
            AUPR-In, AUPR-Out and ACC (``openood_*`` keys, see
            :func:`~gradmix_plugin.evaluation.openood_metrics`).
            Defaults to False.
        chunk_size (int): Queries per faiss search. Defaults to 4096.
        bank_dtype (str): Storage of the normalised bank while ``knn`` and
            ``class_knn`` search it: ``'float32'`` or ``'float16'`` (half
            the memory, exact up to the float16 rounding of the bank).
            Defaults to ``'float32'``.
        knn_index (str): Index of ``knn``: ``'flat'`` (exact) or ``'ivf'``
            (approximate, faiss inverted lists; ``class_knn`` stays exact).
            Defaults to ``'flat'``.
        knn_nlist (int): Inverted lists of ``knn_index='ivf'``.
            Defaults to 1024.
        knn_nprobe (int): Lists searched per query with
            ``knn_index='ivf'``. Defaults to 32.
        use_gpu (bool, optional): faiss on the GPU; ``None`` picks the GPU
            when available. Defaults to None.
        collect_device (str): Device for collecting results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``'osr'``.
        collect_dir (str, optional): Directory for collecting results with
            ``collect_device='cpu'``. Defaults to None.

    Examples:
        >>> from gradmix_plugin.evaluation import OSRMetric
        >>> metrics, per_sample = OSRMetric.calculate(
        ...     dict(logits=logits), labels, scores=('msp', 'mls'))
        >>> metrics['mls/auroc']
    """
    default_prefix = 'osr'

    def __init__(self,
                 scores: Sequence[str] = OSR_SCORES,
                 feature: str = 'embeds',
                 class_knn_k: int = 3,
                 knn_k: int = 50,
                 num_classes: Optional[int] = None,
                 energy_temperature: float = 1.0,
                 mahalanobis_shrinkage: Union[str, float] = 'auto',
                 openood_compat: bool = False,
                 chunk_size: int = 4096,
                 bank_dtype: str = 'float32',
                 knn_index: str = 'flat',
                 knn_nlist: int = 1024,
                 knn_nprobe: int = 32,
                 use_gpu: Optional[bool] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.scores = self._check_scores(scores)
        if feature not in ('embeds', 'feats', 'both'):
            raise ValueError(
                "feature must be 'embeds', 'feats' or 'both', got "
                f'{feature!r}')
        self.feature = feature
        self.class_knn_k = class_knn_k
        self.knn_k = knn_k
        self.num_classes = num_classes
        self.energy_temperature = energy_temperature
        self.mahalanobis_shrinkage = mahalanobis_shrinkage
        self.openood_compat = openood_compat
        self.chunk_size = chunk_size
        check_knn_options(bank_dtype, knn_index, knn_nlist, knn_nprobe)
        self.bank_dtype = bank_dtype
        self.knn_index = knn_index
        self.knn_nlist = knn_nlist
        self.knn_nprobe = knn_nprobe
        self.use_gpu = use_gpu
        self.bank: Optional[Dict[str, np.ndarray]] = None
        self.bank_labels: Optional[np.ndarray] = None
        self.last_per_sample: Optional[Dict[str, np.ndarray]] = None

    @staticmethod
    def _check_scores(scores: Sequence[str]) -> Tuple[str, ...]:
        if isinstance(scores, str):
            scores = (scores, )
        unknown = [s for s in scores if s not in OSR_SCORES]
        if unknown or not scores:
            raise ValueError(
                f'scores must be a non-empty subset of {OSR_SCORES}, got '
                f'{tuple(scores)}')
        return tuple(scores)

    @property
    def output_keys(self) -> Tuple[str, ...]:
        """Model outputs kept per sample by :meth:`process`."""
        keys = ['logits']
        if any(s in BANK_SCORES for s in self.scores):
            if self.feature in ('feats', 'both'):
                keys.append('feats')
            if self.feature in ('embeds', 'both'):
                keys.append('embeds')
        return tuple(keys)

    def set_bank(self, bank: Dict[str, ArrayLike], labels: ArrayLike) -> None:
        """Set the training bank of the kNN scores.

        Args:
            bank (dict[str, np.ndarray | torch.Tensor]): Training vectors by
                output key (``'feats'`` and / or ``'embeds'``), each of
                shape ``(M, D)``.
            labels (np.ndarray | torch.Tensor): Known classes of the bank
                vectors, shape ``(M, )``, all ``>= 0``.
        """
        labels = _to_numpy(labels).reshape(-1).astype(np.int64)
        if labels.size == 0:
            raise ValueError('the bank is empty')
        if (labels < 0).any():
            raise ValueError(
                f'bank labels must be known classes (>= 0), found '
                f'{int((labels < 0).sum())} negative labels')
        checked = {}
        for key, vectors in bank.items():
            vectors = _to_numpy(vectors)
            if vectors.ndim != 2 or vectors.shape[0] != labels.size:
                raise ValueError(
                    f'bank[{key!r}] must have shape ({labels.size}, D), got '
                    f'{vectors.shape}')
            checked[key] = vectors
        self.bank, self.bank_labels = checked, labels

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep ``gt_label``, ``ood_source`` (if any) and the model outputs
        of every sample.

        Args:
            data_batch: A batch of data from the dataloader.
            data_samples (Sequence[dict]): A batch of outputs from the model.
        """
        for data_sample in data_samples:
            gt_label = _to_numpy(data_sample['gt_label']).reshape(-1)
            result = dict(
                gt_label=int(gt_label[0]),
                ood_source=data_sample.get('ood_source'))
            for key in self.output_keys:
                if key in data_sample:
                    result[key] = _to_numpy(data_sample[key]).reshape(-1)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics from the collected results.

        Args:
            results (list[dict]): The processed results of every sample.

        Returns:
            dict[str, float]: The metrics, in percent.
        """
        start = time.perf_counter()
        labels = np.array([r['gt_label'] for r in results], dtype=np.int64)
        outputs = {}
        for key in self.output_keys:
            present = sum(key in r for r in results)
            if present == len(results):
                outputs[key] = np.stack([r[key] for r in results])
            elif present:
                raise ValueError(
                    f'only {present} of {len(results)} samples have '
                    f'{key!r} in their model outputs')
        sources = [r.get('ood_source') for r in results]
        metrics, self.last_per_sample = self.calculate(
            outputs,
            labels,
            bank=self.bank,
            bank_labels=self.bank_labels,
            scores=self.scores,
            feature=self.feature,
            class_knn_k=self.class_knn_k,
            knn_k=self.knn_k,
            num_classes=self.num_classes,
            energy_temperature=self.energy_temperature,
            mahalanobis_shrinkage=self.mahalanobis_shrinkage,
            openood_compat=self.openood_compat,
            chunk_size=self.chunk_size,
            bank_dtype=self.bank_dtype,
            knn_index=self.knn_index,
            knn_nlist=self.knn_nlist,
            knn_nprobe=self.knn_nprobe,
            use_gpu=self.use_gpu,
            ood_sources=sources if any(sources) else None,
            ood_groups=(self.dataset_meta or {}).get('ood_groups'))
        print_log(
            f'OSRMetric: scored {labels.size} samples '
            f'({int((labels >= 0).sum())} known) in '
            f'{time.perf_counter() - start:.1f} s; open-set metrics (%):\n' +
            format_osr_table(metrics),
            logger='current')
        return metrics

    @staticmethod
    def _bank_vectors(outputs: Dict[str, np.ndarray],
                      bank: Optional[Dict[str, np.ndarray]], feature: str
                      ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Query and bank vectors of ``feature``, or None with a warning."""
        keys = ('feats', 'embeds') if feature == 'both' else (feature, )
        missing = [k for k in keys if k not in outputs]
        if missing:
            _warn(f'OSRMetric: the model outputs have no {missing}, so the '
                  f'bank scores with feature={feature!r} are skipped')
            return None
        if bank is None:
            _warn('OSRMetric: no training bank was set (add OSRBankHook to '
                  'custom_hooks or call set_bank()), so the kNN and '
                  'Mahalanobis scores are skipped')
            return None
        missing = [k for k in keys if k not in bank]
        if missing:
            _warn(f'OSRMetric: the bank has no {missing}, so the bank scores '
                  f'with feature={feature!r} are skipped')
            return None
        if feature != 'both':
            return outputs[feature], bank[feature]
        return tuple(
            np.concatenate([l2_normalize(side[k]) for k in keys], axis=1)
            for side in (outputs, bank))

    @staticmethod
    def _check_sources(ood_sources: Sequence[Optional[str]],
                       is_known: np.ndarray,
                       ood_groups: Optional[Mapping[str, Sequence[str]]]
                       ) -> Tuple[np.ndarray, List[str]]:
        """Per-sample source names ('' for known samples) and the sources in
        order of first appearance, checked against the labels and groups."""
        sources = np.array(['' if s is None else str(s) for s in ood_sources])
        if sources.shape != is_known.shape:
            raise ValueError(
                f'ood_sources has {sources.size} entries, expected one per '
                f'sample ({is_known.size})')
        named_known = int((is_known & (sources != '')).sum())
        if named_known:
            raise ValueError(
                f'{named_known} known samples have an ood_source (e.g. '
                f'{str(sources[is_known & (sources != "")][0])!r}); only '
                'OOD samples (gt_label -1) may name one')
        unnamed = int((~is_known & (sources == '')).sum())
        if unnamed:
            raise ValueError(
                f'{unnamed} unknown samples have no ood_source while others '
                'have one; build the test set with OODDataset')
        names = [str(s) for s in dict.fromkeys(sources[~is_known])]
        for group, members in (ood_groups or {}).items():
            missing = [m for m in members if m not in names]
            if missing or not members:
                raise ValueError(
                    f'OOD group {group!r} names sources {list(members)}, '
                    f'but {missing} have no samples; the sources are '
                    f'{names}')
        return sources, names

    @classmethod
    def calculate(cls,
                  outputs: Dict[str, ArrayLike],
                  labels: ArrayLike,
                  bank: Optional[Dict[str, ArrayLike]] = None,
                  bank_labels: Optional[ArrayLike] = None,
                  scores: Sequence[str] = OSR_SCORES,
                  feature: str = 'embeds',
                  class_knn_k: int = 3,
                  knn_k: int = 50,
                  num_classes: Optional[int] = None,
                  energy_temperature: float = 1.0,
                  mahalanobis_shrinkage: Union[str, float] = 'auto',
                  openood_compat: bool = False,
                  chunk_size: int = 4096,
                  bank_dtype: str = 'float32',
                  knn_index: str = 'flat',
                  knn_nlist: int = 1024,
                  knn_nprobe: int = 32,
                  use_gpu: Optional[bool] = None,
                  ood_sources: Optional[Sequence[Optional[str]]] = None,
                  ood_groups: Optional[Mapping[str, Sequence[str]]] = None
                  ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
        """Compute the metrics from stacked outputs, without a runner.

        Args:
            outputs (dict[str, np.ndarray | torch.Tensor]): Stacked model
                outputs of the test samples: ``'logits'`` ``(N, C)``,
                ``'feats'`` ``(N, Df)`` and / or ``'embeds'`` ``(N, De)``.
            labels (np.ndarray | torch.Tensor): ``gt_label`` ``(N, )``,
                negative for unknown samples.
            bank (dict[str, np.ndarray | torch.Tensor], optional): Training
                bank, as in :meth:`set_bank`. Defaults to None.
            bank_labels (np.ndarray | torch.Tensor, optional): Classes of
                the bank vectors. Defaults to None.
            scores, feature, class_knn_k, knn_k, num_classes,
                energy_temperature, mahalanobis_shrinkage, openood_compat,
                chunk_size, bank_dtype, knn_index, knn_nlist, knn_nprobe,
                use_gpu: As in :class:`OSRMetric`.
            ood_sources (Sequence[str | None], optional): The OOD source of
                every sample, None (or '') for the known samples. Defaults
                to None (no per-source metrics).
            ood_groups (Mapping[str, Sequence[str]], optional): Groups of
                sources, e.g. ``dict(near=['cifar100', 'tin'])``, reported
                as the mean over their sources. Defaults to None.

        Returns:
            tuple[dict[str, float], dict[str, np.ndarray]]: The metrics in
            percent, and per-sample arrays: ``is_known``, ``gt_label``,
            ``pred_label`` (the model's closed-set predictions),
            ``score_{name}`` / ``pred_{name}`` for every computed score and,
            with ``ood_sources``, ``ood_source`` ('' for known samples).
        """
        scores = cls._check_scores(scores)
        labels = _to_numpy(labels).reshape(-1).astype(np.int64)
        outputs = {k: _to_numpy(v) for k, v in outputs.items()}
        is_known = labels >= 0
        if ood_sources is not None:
            sources, source_names = cls._check_sources(ood_sources, is_known,
                                                       ood_groups)
        elif ood_groups:
            raise ValueError(
                f'ood_groups {dict(ood_groups)} need ood_sources')
        logits = outputs.get('logits')
        logit_preds = None if logits is None else logits.argmax(axis=1)

        computed: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        class_knn_preds = None
        wanted_bank = any(s in BANK_SCORES for s in scores)
        vectors = (
            cls._bank_vectors(outputs, bank, feature) if wanted_bank else None)
        if vectors is not None:
            query, bank_vectors = vectors
            if 'class_knn' in scores or logits is None:
                if num_classes is None:
                    num_classes = (
                        logits.shape[1] if logits is not None else
                        int(np.max(_to_numpy(bank_labels))) + 1)
                class_knn, class_knn_preds = class_knn_scores(
                    query, bank_vectors, bank_labels, num_classes,
                    class_knn_k, chunk_size, use_gpu,
                    bank_dtype=bank_dtype)
                if 'class_knn' in scores:
                    computed['class_knn'] = (class_knn, class_knn_preds)
            if 'knn' in scores:
                knn = knn_scores(
                    query,
                    bank_vectors,
                    knn_k,
                    chunk_size,
                    use_gpu,
                    bank_dtype=bank_dtype,
                    index=knn_index,
                    nlist=knn_nlist,
                    nprobe=knn_nprobe)
                computed['knn'] = (knn, logit_preds if logits is not None
                                   else class_knn_preds)
            if 'mahalanobis' in scores:
                computed['mahalanobis'] = mahalanobis_scores(
                    query, bank_vectors, _to_numpy(bank_labels),
                    mahalanobis_shrinkage)
        for name in (s for s in scores if s in LOGIT_SCORES):
            if logits is None:
                _warn(f'OSRMetric: the model outputs have no logits, so '
                      f'{name!r} is skipped')
                continue
            computed[name] = (logit_scores(logits, name, energy_temperature),
                              logit_preds)
        if not computed:
            raise ValueError(
                f'OSRMetric could not compute any of the scores {scores}; '
                'see the warnings above')

        # Subsets of the samples: all of them, then the known samples with
        # each OOD source alone.
        subsets = {'': np.ones_like(is_known)}
        if ood_sources is not None:
            subsets.update(
                (f'{SOURCE_KEY_PREFIX}{name}/', is_known | (sources == name))
                for name in source_names)
        metrics = {}
        per_sample = dict(is_known=is_known, gt_label=labels)
        for name, (values, preds) in computed.items():
            for prefix, rows in subsets.items():
                for key, value in compute_osr_metrics(
                        values[rows], is_known[rows], preds[rows],
                        labels[rows], openood_compat).items():
                    metrics[f'{prefix}{name}/{key}'] = 100.0 * value
            per_sample[f'score_{name}'] = values
            per_sample[f'pred_{name}'] = preds
        for group, members in (ood_groups or {}).items():
            for key in [k for k in metrics if k.startswith(
                    f'{SOURCE_KEY_PREFIX}{members[0]}/')]:
                suffix = key.split('/', 1)[1]
                metrics[f'{GROUP_KEY_PREFIX}{group}/{suffix}'] = float(
                    np.mean([
                        metrics[f'{SOURCE_KEY_PREFIX}{m}/{suffix}']
                        for m in members
                    ]))
        if ood_sources is not None:
            per_sample['ood_source'] = sources
        model_preds = (
            logit_preds if logit_preds is not None else class_knn_preds)
        per_sample['pred_label'] = model_preds
        metrics['accuracy'] = (
            100.0 * float(np.mean(model_preds[is_known] == labels[is_known]))
            if is_known.any() else float('nan'))
        return metrics, per_sample
