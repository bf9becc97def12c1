import logging
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from ..functional import (
    OSR_SCORES,
    check_knn_options,
    compute_osr_metrics,
    l2_normalize,
)
from ..keys import MODEL_ACCURACY, build_metric_key, check_key_name
from ..report import format_osr_table
from ..scores import SCORES, BaseScore, ScoreInputError
from ..scores.selection import resolve_grid, select_score

ArrayLike = Union[np.ndarray, torch.Tensor]
ScoreSpec = Union[str, dict]

#: Per-sample model outputs the metric reads.
OUTPUT_KEYS = ('feats', 'embeds', 'logits')
#: ``OSRMetric`` options that are default arguments of the six original
#: scores: option -> (score types, score argument).
SCORE_OPTIONS = dict(
    class_knn_k=(('class_knn', ), 'k'),
    knn_k=(('knn', ), 'k'),
    num_classes=(('class_knn', ), 'num_classes'),
    energy_temperature=(('energy', ), 'temperature'),
    mahalanobis_shrinkage=(('mahalanobis', ), 'shrinkage'),
    chunk_size=(('knn', 'class_knn'), 'chunk_size'),
    bank_dtype=(('knn', 'class_knn'), 'bank_dtype'),
    knn_index=(('knn', ), 'index'),
    knn_nlist=(('knn', ), 'nlist'),
    knn_nprobe=(('knn', ), 'nprobe'),
    use_gpu=(('knn', 'class_knn'), 'use_gpu'))
#: Defaults of :data:`SCORE_OPTIONS` (the signature of ``OSRMetric``).
SCORE_OPTION_DEFAULTS = dict(
    class_knn_k=3,
    knn_k=50,
    num_classes=None,
    energy_temperature=1.0,
    mahalanobis_shrinkage='auto',
    chunk_size=4096,
    bank_dtype='float32',
    knn_index='flat',
    knn_nlist=1024,
    knn_nprobe=32,
    use_gpu=None)


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()  # mixed-precision outputs (numpy has no bf16)
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _without_grid(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != 'grid'}


def resolve_score_specs(scores: Optional[Sequence[ScoreSpec]],
                        options: Optional[Mapping[str, Any]] = None
                        ) -> Tuple[Dict[str, dict], bool]:
    """Score configs by report name, and whether they were chosen
    explicitly.

    Args:
        scores (Sequence[str | dict], optional): Registered names or
            configs ``dict(type=name, **kwargs)``; a config may carry
            ``name`` (the report name, e.g. two ReAct percentiles). None:
            the six original scores (:data:`OSR_SCORES`).
        options (Mapping[str, Any], optional): ``OSRMetric`` options of
            :data:`SCORE_OPTIONS`, default arguments of those scores.

    Returns:
        tuple[dict[str, dict], bool]: ``{name: config}`` in order, and
        False when ``scores`` was None.
    """
    explicit = scores is not None
    if scores is None:
        scores = OSR_SCORES
    elif isinstance(scores, (str, dict)):
        scores = (scores, )
    options = dict(options or {})
    specs: Dict[str, dict] = {}
    for spec in scores:
        cfg = dict(type=spec) if isinstance(spec, str) else dict(spec)
        if not isinstance(cfg.get('type'), str):
            raise TypeError(
                'OSRMetric scores must be registered names or dicts with a '
                f'type, got {spec!r}')
        if cfg['type'] not in SCORES.module_dict:
            raise ValueError(
                f"unknown score {cfg['type']!r} in OSRMetric scores; "
                f'registered scores: {sorted(SCORES.module_dict)}')
        name = check_key_name(cfg.pop('name', cfg['type']), 'score')
        if 'grid' in cfg:
            cfg['grid'] = resolve_grid(cfg['type'], cfg['grid'])
        if name in specs:
            raise ValueError(
                f'score {name!r} is listed twice in OSRMetric scores; give '
                "the configs different names (dict(type=..., name='...'))")
        for option, (types, arg) in SCORE_OPTIONS.items():
            if cfg['type'] not in types or option not in options:
                continue
            value = options[option]
            if arg in cfg and value != SCORE_OPTION_DEFAULTS[option] \
                    and cfg[arg] != value:
                raise ValueError(
                    f'OSRMetric {option}={value!r} conflicts with '
                    f'{arg}={cfg[arg]!r} of score {name!r}; set it in one '
                    'place')
            cfg.setdefault(arg, value)
        specs[name] = cfg
    if not specs:
        raise ValueError('OSRMetric scores must not be empty')
    return specs, explicit


def final_layer_of(model: Any) -> Tuple[Optional[np.ndarray],
                                        Optional[np.ndarray], str]:
    """Weight and bias of a model's final linear layer, and its name.

    Uses ``get_final_layer()`` of the model or its head (``OSRLinearClsHead``
    and ``ContrastiveClassifier`` have one), else the ``fc`` ``nn.Linear``
    of ``model.head`` (mmpretrain's linear heads). ``(None, None, name)``
    for models without one.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    name = type(model).__name__
    layer = None
    for owner in (model, getattr(model, 'head', None)):
        if owner is not None and hasattr(owner, 'get_final_layer'):
            layer = owner.get_final_layer()
            break
    else:
        fc = getattr(getattr(model, 'head', None), 'fc', None)
        if isinstance(fc, torch.nn.Linear):
            layer = (fc.weight, fc.bias)
    if layer is None:
        return None, None, name
    weight, bias = layer
    return (_to_numpy(weight).astype(np.float64),
            None if bias is None else _to_numpy(bias).astype(np.float64),
            name)


@METRICS.register_module()
class OSRMetric(BaseMetric):
    """Open-set recognition and OOD detection metrics for several scores.

    Evaluates a test set made of known samples (``gt_label`` in
    ``[0, K)``) and unknown samples (any negative ``gt_label``, the
    plugin uses -1). Every score is a registered class of
    ``gradmix_plugin.registry.SCORES`` (``docs/evaluation.md`` lists them
    with their formulas): the six original ones (``class_knn``, ``knn``,
    ``mahalanobis``, ``msp``, ``mls``, ``energy``) and OpenOOD's post-hoc
    detectors (``temp_scaling``, ``gen``, ``klm``, ``react``, ``ash``,
    ``scale``, ``dice``, ``vim``, ``rmds``, ``she``, ``nnguide``, ``fdbd``,
    ``gradnorm``). For every score it reports ``{score}/auroc``,
    ``{score}/aupr_in``, ``{score}/aupr_out``, ``{score}/fpr95_known_pos``,
    ``{score}/fpr95_ood_pos``, ``{score}/accuracy``, ``{score}/oscr`` and
    ``{score}/oscr_arpl`` (see
    :func:`gradmix_plugin.evaluation.compute_osr_metrics`; with
    ``openood_compat=True`` also ``{score}/openood_*``), plus the
    closed-set ``accuracy`` of the model, all as **percentages** like
    mmpretrain's ``Accuracy``. With the default prefix the keys read
    ``osr/class_knn/auroc``, ``osr/accuracy``, ... (built and parsed by
    :mod:`gradmix_plugin.evaluation.keys`).

    OOD benchmarks (``OODDataset``): unknown samples that carry an
    ``ood_source`` name in their data sample are also evaluated per source
    (the known samples against that source only), keys
    ``ood={source}/{score}/{metric}``, and per group of sources (the mean
    over the group's sources, as OpenOOD averages its near / far sets),
    keys ``group={group}/{score}/{metric}``, with the groups taken from the
    dataset's ``ood_groups`` metainfo. The keys without a source are then
    the known samples against all OOD sources together.

    Inputs: the bank scores (``knn``, ``class_knn``, ``mahalanobis``) read
    the vectors of ``feature`` and the training bank, set with
    :meth:`set_bank` by ``OSRBankHook`` before every evaluation. The other
    scores read the ``logits`` and / or the pooled ``feats`` (the input of
    the final linear layer), and some the final layer itself
    (:meth:`set_model`, also called by ``OSRBankHook``) or the bank's
    ``feats``. The scores that fit on a held-out known set (``val``:
    ``temp_scaling``, ``klm``, ``react``) use the bank unless
    :meth:`set_val` gave one. All scores are computed from one pass of the
    model over the test set (the stored outputs).

    With the default ``scores=None`` (the six original scores), a score
    whose inputs are missing is skipped with a logged warning, so one
    config serves models with and without a classifier; if no score at all
    can be computed, ``compute_metrics`` raises ``ValueError``. A score
    listed in ``scores`` whose inputs are missing raises
    :class:`~gradmix_plugin.evaluation.ScoreInputError` naming the score,
    the model and the missing input. :attr:`last_per_sample` keeps the
    per-sample scores of the last evaluation on the main process, and
    :attr:`last_fit_info` what every score fitted.

    Args:
        scores (Sequence[str | dict], optional): Scores to evaluate:
            registered names or configs ``dict(type=name, **kwargs)``,
            optionally with ``name`` (the report name). Defaults to None:
            the six original scores, skipping those without inputs.
        feature (str): Vectors of the bank scores: ``'embeds'`` (projection
            head embeddings), ``'feats'`` (backbone / neck features) or
            ``'both'`` (the concatenation of the separately L2-normalised
            feats and embeds). Defaults to ``'embeds'``.
        class_knn_k (int): ``k`` of ``class_knn``. Defaults to 3.
        knn_k (int): ``k`` of ``knn``. Defaults to 50.
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
        prefix (str, optional): Prefix of the metric names (no ``=``).
            Defaults to ``'osr'``.
        collect_dir (str, optional): Directory for collecting results with
            ``collect_device='cpu'``. Defaults to None.

    The score options (``class_knn_k`` to ``use_gpu``) are default
    arguments of the scores given by name; a score config that sets the
    same argument to another value is refused. A score config with
    ``grid=dict(<argument>=[...])`` (or ``grid='openood'``, OpenOOD's
    sweep) has its arguments chosen without the test set: the AUROC of the
    held-out known samples against an OOD validation source, both given by
    :meth:`set_val` (see
    :func:`~gradmix_plugin.evaluation.scores.select_score`); the grid, the
    AUROC of every point and the choice are in :attr:`last_fit_info`.

    Examples:
        >>> from gradmix_plugin.evaluation import OSRMetric
        >>> metrics, per_sample = OSRMetric.calculate(
        ...     dict(logits=logits), labels, scores=('msp', 'mls'))
        >>> metrics['mls/auroc']
    """
    default_prefix = 'osr'

    def __init__(self,
                 scores: Optional[Sequence[ScoreSpec]] = None,
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
        check_key_name(self.prefix, 'prefix')
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
        self.score_specs, self.explicit_scores = resolve_score_specs(
            scores, self.score_options)
        # Build once to refuse bad arguments before any evaluation.
        self._score_objects = {
            name: SCORES.build(_without_grid(cfg))
            for name, cfg in self.score_specs.items()
        }
        self.scores = tuple(self.score_specs)
        self.bank: Optional[Dict[str, np.ndarray]] = None
        self.bank_labels: Optional[np.ndarray] = None
        self.val: Optional[Dict[str, np.ndarray]] = None
        self.ood_val: Optional[Dict[str, np.ndarray]] = None
        self.fc_weight: Optional[np.ndarray] = None
        self.fc_bias: Optional[np.ndarray] = None
        self.model_name: Optional[str] = None
        self.last_per_sample: Optional[Dict[str, np.ndarray]] = None
        self.last_fit_info: Optional[Dict[str, dict]] = None

    @property
    def score_options(self) -> Dict[str, Any]:
        """The options of :data:`SCORE_OPTIONS` as set."""
        return {option: getattr(self, option) for option in SCORE_OPTIONS}

    @property
    def output_keys(self) -> Tuple[str, ...]:
        """Model outputs kept per sample by :meth:`process`."""
        keys = ['logits']
        scores = self._score_objects.values()
        if any(s.feature == 'penultimate' and 'feats' in s.needs
               for s in scores) or any(
                   s.feature == 'bank' for s in scores) and self.feature in (
                       'feats', 'both'):
            keys.append('feats')
        if any(s.feature == 'bank' for s in scores) and self.feature in (
                'embeds', 'both'):
            keys.append('embeds')
        return tuple(keys)

    def set_bank(self, bank: Dict[str, ArrayLike], labels: ArrayLike) -> None:
        """Set the training bank of the scores.

        Args:
            bank (dict[str, np.ndarray | torch.Tensor]): Training vectors by
                output key (``'feats'``, ``'embeds'`` and / or
                ``'logits'``), each of shape ``(M, D)``.
            labels (np.ndarray | torch.Tensor): Known classes of the bank
                vectors, shape ``(M, )``, all ``>= 0``.
        """
        self.bank, self.bank_labels = self._check_bank(bank, labels, 'bank')

    def set_val(self,
                val: Optional[Dict[str, ArrayLike]],
                labels: Optional[ArrayLike] = None,
                ood: Optional[Dict[str, ArrayLike]] = None) -> None:
        """Set held-out known samples (never the test set) for the scores
        that fit on one (``temp_scaling``, ``klm``, ``react``) and for the
        parameter selection of scores configured with a ``grid``; None
        removes them, and those scores fit on the bank.

        Args:
            val (dict[str, np.ndarray | torch.Tensor], optional): Vectors
                by output key, as in :meth:`set_bank`.
            labels (np.ndarray | torch.Tensor, optional): Their classes.
            ood (dict[str, np.ndarray | torch.Tensor], optional): Outputs
                of an OOD validation source (never a test source), by
                output key, for the ``grid`` selection. Defaults to None.
        """
        if val is None:
            self.val = self.ood_val = None
            return
        vectors, labels = self._check_bank(val, labels, 'val')
        self.val = dict(vectors, labels=labels)
        if ood is not None:
            size = len(next(iter(ood.values())))
            self.ood_val, _ = self._check_bank(ood, np.zeros(size), 'ood')
        else:
            self.ood_val = None

    def set_model(self, model: Any) -> None:
        """Take the final linear layer (weight and bias) and the name of
        the evaluated model, for the scores that need them (see
        :func:`final_layer_of`). ``OSRBankHook`` calls it before every
        evaluation."""
        self.fc_weight, self.fc_bias, self.model_name = final_layer_of(model)

    @staticmethod
    def _check_bank(bank: Dict[str, ArrayLike], labels: ArrayLike,
                    what: str) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        labels = _to_numpy(labels).reshape(-1).astype(np.int64)
        if labels.size == 0:
            raise ValueError(f'the {what} is empty')
        if (labels < 0).any():
            raise ValueError(
                f'{what} labels must be known classes (>= 0), found '
                f'{int((labels < 0).sum())} negative labels')
        checked = {}
        for key, vectors in bank.items():
            vectors = _to_numpy(vectors)
            if vectors.ndim != 2 or vectors.shape[0] != labels.size:
                raise ValueError(
                    f'{what}[{key!r}] must have shape ({labels.size}, D), '
                    f'got {vectors.shape}')
            checked[key] = vectors
        return checked, labels

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
        if not results:
            raise ValueError(
                'OSRMetric received no samples: the evaluated dataloader is '
                'empty. Check its dataset (data_root, the OSR subset and '
                'classes, max_per_class).')
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
        for key, values in outputs.items():
            if len(values) > 1 and np.isfinite(values).all() and np.ptp(
                    values, axis=0).max(initial=0) <= 1e-6 * max(
                        1.0, float(np.abs(values).max(initial=0))):
                _warn(f'OSRMetric: the {key} of all {len(values)} samples '
                      'are the same (a degenerate or collapsed model): '
                      'every score ties and the metrics are at chance '
                      'level. Check the training run (loss, learning '
                      'rate) and the checkpoint.')
        sources = [r.get('ood_source') for r in results]
        fit_info: Dict[str, dict] = {}
        metrics, self.last_per_sample = self.calculate(
            outputs,
            labels,
            bank=self.bank,
            bank_labels=self.bank_labels,
            scores=(list(self._score_specs_with_names())
                    if self.explicit_scores else None),
            feature=self.feature,
            openood_compat=self.openood_compat,
            ood_sources=sources if any(sources) else None,
            ood_groups=(self.dataset_meta or {}).get('ood_groups'),
            fc_weight=self.fc_weight,
            fc_bias=self.fc_bias,
            val=self.val,
            ood_val=self.ood_val,
            model_name=self.model_name,
            fit_info=fit_info,
            **self.score_options)
        self.last_fit_info = fit_info
        print_log(
            f'OSRMetric: scored {labels.size} samples '
            f'({int((labels >= 0).sum())} known) in '
            f'{time.perf_counter() - start:.1f} s; open-set metrics (%):\n' +
            format_osr_table({
                build_metric_key(None, key, prefix=self.prefix): value
                for key, value in metrics.items()
            }),
            logger='current')
        return metrics

    def _score_specs_with_names(self):
        for name, cfg in self.score_specs.items():
            yield dict(cfg, name=name) if name != cfg['type'] else dict(cfg)

    @staticmethod
    def _bank_vectors(outputs: Dict[str, np.ndarray],
                      bank: Optional[Dict[str, np.ndarray]], feature: str
                      ) -> Tuple[Optional[Tuple[np.ndarray, np.ndarray]],
                                 str]:
        """Query and bank vectors of ``feature``, or None and why."""
        keys = ('feats', 'embeds') if feature == 'both' else (feature, )
        missing = [k for k in keys if k not in outputs]
        if missing:
            return None, (f'the model outputs have no {missing} '
                          f'(feature={feature!r})')
        if bank is None:
            return None, ('no training bank was set (add OSRBankHook to '
                          'custom_hooks or call set_bank())')
        missing = [k for k in keys if k not in bank]
        if missing:
            return None, (f'the bank has no {missing} '
                          f'(feature={feature!r})')
        if feature != 'both':
            return (outputs[feature], bank[feature]), ''
        return tuple(
            np.concatenate([l2_normalize(side[k]) for k in keys], axis=1)
            for side in (outputs, bank)), ''
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

    @classmethod
    def calculate(cls,
                  outputs: Dict[str, ArrayLike],
                  labels: ArrayLike,
                  bank: Optional[Dict[str, ArrayLike]] = None,
                  bank_labels: Optional[ArrayLike] = None,
                  scores: Optional[Sequence[ScoreSpec]] = None,
                  feature: str = 'embeds',
                  openood_compat: bool = False,
                  ood_sources: Optional[Sequence[Optional[str]]] = None,
                  ood_groups: Optional[Mapping[str, Sequence[str]]] = None,
                  fc_weight: Optional[ArrayLike] = None,
                  fc_bias: Optional[ArrayLike] = None,
                  val: Optional[Dict[str, ArrayLike]] = None,
                  ood_val: Optional[Dict[str, ArrayLike]] = None,
                  model_name: Optional[str] = None,
                  fit_info: Optional[Dict[str, dict]] = None,
                  **score_options
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
            scores, feature, openood_compat: As in :class:`OSRMetric`.
            ood_sources (Sequence[str | None], optional): The OOD source of
                every sample, None (or '') for the known samples. Defaults
                to None (no per-source metrics).
            ood_groups (Mapping[str, Sequence[str]], optional): Groups of
                sources, e.g. ``dict(near=['cifar100', 'tin'])``, reported
                as the mean over their sources. Defaults to None.
            fc_weight (np.ndarray | torch.Tensor, optional): Final linear
                layer weight ``(C, Df)``. Defaults to None.
            fc_bias (np.ndarray | torch.Tensor, optional): Its bias.
                Defaults to None.
            val (dict[str, np.ndarray], optional): Held-out known samples
                (``feats`` / ``logits`` / ``labels``), see :meth:`set_val`.
                Defaults to None.
            ood_val (dict[str, np.ndarray], optional): An OOD validation
                source (``feats`` / ``logits``), for the scores with a
                ``grid``. Defaults to None.
            model_name (str, optional): The model, named in errors.
                Defaults to None.
            fit_info (dict, optional): Filled with what every score
                fitted (type, arguments, statistics). Defaults to None.
            **score_options: ``class_knn_k``, ``knn_k``, ``num_classes``,
                ``energy_temperature``, ``mahalanobis_shrinkage``,
                ``chunk_size``, ``bank_dtype``, ``knn_index``,
                ``knn_nlist``, ``knn_nprobe``, ``use_gpu``, as in
                :class:`OSRMetric`.

        Returns:
            tuple[dict[str, float], dict[str, np.ndarray]]: The metrics in
            percent, and per-sample arrays: ``is_known``, ``gt_label``,
            ``pred_label`` (the model's closed-set predictions),
            ``score_{name}`` / ``pred_{name}`` for every computed score and,
            with ``ood_sources``, ``ood_source`` ('' for known samples).
        """
        unknown = set(score_options) - set(SCORE_OPTIONS)
        if unknown:
            raise TypeError(
                f'OSRMetric.calculate got unknown options {sorted(unknown)}')
        options = dict(SCORE_OPTION_DEFAULTS, **score_options)
        specs, explicit = resolve_score_specs(scores, options)
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
        model = model_name or 'the model'
        if bank is not None:
            bank = {k: _to_numpy(v) for k, v in bank.items()}
            bank_labels = _to_numpy(bank_labels).reshape(-1)

        def skip_or_raise(name: str, reason: str, fix: str) -> None:
            if explicit:
                raise ScoreInputError(
                    f"OSRMetric: score '{name}' cannot be computed for "
                    f'{model}: {reason}; {fix}')
            _warn(f"OSRMetric: score '{name}' is skipped: {reason}")

        vectors, no_vectors = (None, '')
        if any(SCORES.get(c['type']).feature == 'bank'
               for c in specs.values()) or logits is None:
            vectors, no_vectors = cls._bank_vectors(outputs, bank, feature)
        if options['num_classes'] is None and logits is not None:
            for cfg in specs.values():
                if cfg['type'] == 'class_knn' and cfg.get(
                        'num_classes') is None:
                    cfg['num_classes'] = logits.shape[1]
        if logits is None and 'class_knn' not in specs and \
                vectors is not None:
            # The model's predictions without logits.
            specs = dict(specs)
            specs[None] = dict(
                type='class_knn',
                k=options['class_knn_k'],
                num_classes=options['num_classes'],
                chunk_size=options['chunk_size'],
                use_gpu=options['use_gpu'],
                bank_dtype=options['bank_dtype'])

        computed: Dict[Optional[str], Tuple[np.ndarray,
                                            Optional[np.ndarray]]] = {}
        for name, cfg in specs.items():
            score: BaseScore = SCORES.build(_without_grid(cfg))
            label = name or 'class_knn'
            if score.feature == 'bank':
                if vectors is None:
                    skip_or_raise(
                        label, no_vectors,
                        'add OSRBankHook to custom_hooks, or choose the '
                        'OSRMetric feature the model outputs')
                    continue
                query, train_feats = vectors
                train = dict(feats=train_feats, labels=bank_labels)
                test_feats = query
            else:
                missing = [
                    k for k in ('feats', 'logits')
                    if k in score.needs and k not in outputs and not (
                        k == 'logits' and fc_weight is not None
                        and 'feats' in outputs)
                ]
                if 'logits' in missing:
                    skip_or_raise(
                        label, 'the model outputs have no logits (no '
                        'classifier head)',
                        'give the model a linear classifier head (e.g. '
                        f"OSRLinearClsHead) or drop '{label}' from the "
                        'OSRMetric scores')
                    continue
                if missing:
                    skip_or_raise(
                        label, "the model outputs have no pooled 'feats' "
                        '(the input of the final linear layer)',
                        'use a head or classifier that stores them (e.g. '
                        f"OSRLinearClsHead) or drop '{label}'")
                    continue
                if 'fc' in score.needs and fc_weight is None:
                    skip_or_raise(
                        label, 'no final linear layer was given (the model '
                        'has no linear classifier head, or OSRBankHook did '
                        'not run)',
                        'evaluate a model with a linear head (e.g. '
                        'OSRLinearClsHead) with OSRBankHook, or pass '
                        'fc_weight / fc_bias')
                    continue
                if 'bank' in score.needs and (bank is None
                                              or 'feats' not in bank):
                    skip_or_raise(
                        label, "no training bank with 'feats' was set",
                        'add OSRBankHook to custom_hooks (it stores the '
                        "'feats' output of the training set)")
                    continue
                train = None
                if bank is not None and 'feats' in bank:
                    train = dict(feats=bank['feats'], labels=bank_labels)
                    if 'logits' in bank:
                        train['logits'] = bank['logits']
                if score.uses_val and val is None and train is None:
                    skip_or_raise(
                        label, 'it fits on held-out known samples and '
                        'neither a val set nor a training bank was set',
                        'add OSRBankHook to custom_hooks or call set_val()')
                    continue
                test_feats = outputs.get('feats')
            if 'grid' in cfg:
                if feature == 'both' and score.feature == 'bank':
                    raise ValueError(
                        f"the grid of '{label}' needs feature='feats' or "
                        "'embeds'")
                key = feature if score.feature == 'bank' else 'feats'
                score, _ = select_score(
                    _without_grid(cfg), cfg['grid'], train, val, ood_val,
                    fc_weight, fc_bias, feature_key=key)
            elif score.needs_fit:
                score.fit(
                    train=train, val=val, fc_weight=fc_weight,
                    fc_bias=fc_bias)
            computed[name] = score.score_and_predict(
                test_feats, logits if 'logits' in score.needs or
                score.feature == 'penultimate' else None)
            if fit_info is not None and name is not None:
                fit_info[name] = dict(
                    type=cfg['type'],
                    args=score.hyper_params,
                    fitted=dict(score.fit_info))
        # The model's closed-set predictions: the logits' argmax, else
        # class_knn's.
        hidden = computed.pop(None, None)
        model_preds = logit_preds
        if model_preds is None and hidden is not None:
            model_preds = hidden[1]
        elif model_preds is None and 'class_knn' in computed and specs[
                'class_knn']['type'] == 'class_knn':
            model_preds = computed['class_knn'][1]
        if not computed:
            raise ValueError(
                'OSRMetric could not compute any of the scores '
                f'{tuple(n for n in specs if n is not None)}; see the '
                'warnings above')

        # Subsets of the samples: all of them, then the known samples with
        # each OOD source alone.
        subsets = {None: np.ones_like(is_known)}
        if ood_sources is not None:
            subsets.update((name, is_known | (sources == name))
                           for name in source_names)
        metrics = {}
        per_sample = dict(is_known=is_known, gt_label=labels)
        for name, (values, preds) in computed.items():
            if preds is None:
                preds = model_preds
            for source, rows in subsets.items():
                for key, value in compute_osr_metrics(
                        values[rows], is_known[rows],
                        None if preds is None else preds[rows],
                        None if preds is None else labels[rows],
                        openood_compat).items():
                    metrics[build_metric_key(name, key,
                                             source=source)] = 100.0 * value
            per_sample[f'score_{name}'] = values
            if preds is not None:
                per_sample[f'pred_{name}'] = preds
        for group, members in (ood_groups or {}).items():
            for name in computed:
                for key in list(metrics):
                    if not key.startswith(
                            build_metric_key(name, '', source=members[0])):
                        continue
                    metric = key.rsplit('/', 1)[1]
                    metrics[build_metric_key(
                        name, metric, group=group)] = float(
                            np.mean([
                                metrics[build_metric_key(
                                    name, metric, source=m)]
                                for m in members
                            ]))
        if ood_sources is not None:
            per_sample['ood_source'] = sources
        if model_preds is not None:
            per_sample['pred_label'] = model_preds
            metrics[MODEL_ACCURACY] = (
                100.0 *
                float(np.mean(model_preds[is_known] == labels[is_known]))
                if is_known.any() else float('nan'))
        return metrics, per_sample
