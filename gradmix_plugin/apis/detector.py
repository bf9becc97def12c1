"""An open-set detector saved once and loaded anywhere.

:class:`OSRDetector` holds what turns the outputs of a trained model into
"class X" or "unknown": the known training vectors (the bank) with their
labels, the class names, a registered score (``gradmix_plugin.registry
.SCORES``) with its parameters, the decision threshold with the target and
achieved true-positive rate, and the provenance (config, checkpoint
SHA-256, data, split). It is saved as a torch file of tensors and plain
Python values only and loaded with ``torch.load(weights_only=True)``:
loading executes no pickled code.
"""
import logging
import os
import os.path as osp
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log

from ..evaluation.functional import l2_normalize
from ..evaluation.scores import BaseScore, build_score
from ..utils.provenance import file_sha256

ArrayLike = Union[np.ndarray, torch.Tensor]

#: ``format`` entry of a saved detector.
DETECTOR_FORMAT = 'gradmix_plugin.OSRDetector'
#: Version of the saved layout.
DETECTOR_VERSION = 1
#: Model outputs a detector can store and read.
OUTPUT_KEYS = ('feats', 'embeds', 'logits')
#: Where the threshold comes from.
THRESHOLD_SOURCES = ('known_holdout', 'training', 'given')
#: Storage types of the saved bank.
BANK_DTYPES = ('float32', 'float16')


class DetectorMismatchError(ValueError):
    """A detector does not belong to the checkpoint or score it is used
    with."""


class DetectorFileError(ValueError):
    """A file is not a readable saved :class:`OSRDetector`."""


def feature_keys(feature: str) -> Tuple[str, ...]:
    """The model outputs behind an ``OSRMetric`` ``feature`` option.

    Args:
        feature (str): ``'embeds'``, ``'feats'`` or ``'both'``.

    Returns:
        tuple[str]: The output keys.
    """
    if feature not in ('embeds', 'feats', 'both'):
        raise ValueError(
            f"feature must be 'embeds', 'feats' or 'both', got {feature!r}")
    return ('feats', 'embeds') if feature == 'both' else (feature, )


def bank_vectors(outputs: Mapping[str, np.ndarray],
                 feature: str) -> np.ndarray:
    """The vectors of the bank scores, as ``OSRMetric`` selects them.

    Args:
        outputs (Mapping[str, np.ndarray]): Stacked model outputs.
        feature (str): ``'embeds'``, ``'feats'`` or ``'both'`` (the
            concatenation of the separately L2-normalised feats and embeds).

    Returns:
        np.ndarray: ``(N, D)`` vectors.
    """
    keys = feature_keys(feature)
    missing = [k for k in keys if k not in outputs]
    if missing:
        raise ValueError(
            f'feature={feature!r} needs the model outputs {missing}, which '
            f'the model does not give (it gives {sorted(outputs)})')
    if feature != 'both':
        return np.asarray(outputs[feature])
    return np.concatenate([l2_normalize(outputs[k]) for k in keys], axis=1)


def threshold_at_tpr(scores: np.ndarray,
                     tpr: float) -> Tuple[float, float]:
    """The threshold keeping a fraction ``tpr`` of known samples.

    A sample is called known when its score is ``>= threshold``. The
    threshold is the ``floor((1 - tpr) * n)``-th smallest of the ``n``
    scores (0-based), so at least ``tpr`` of them are kept (ties keep
    more).

    Args:
        scores (np.ndarray): Scores of known samples, higher = more known.
        tpr (float): Target true-positive rate in ``(0, 1]``.

    Returns:
        tuple[float, float]: The threshold and the achieved rate on
        ``scores``.
    """
    scores = np.sort(np.asarray(scores, np.float64).reshape(-1))
    if scores.size == 0:
        raise ValueError('no known scores to set the threshold on')
    if not 0 < tpr <= 1:
        raise ValueError(f'the target TPR must lie in (0, 1], got {tpr!r}')
    rank = int(np.floor((1.0 - tpr) * scores.size + 1e-9))
    threshold = float(scores[min(rank, scores.size - 1)])
    return threshold, float(np.mean(scores >= threshold))


def _to_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _to_tensor(value: Optional[np.ndarray],
               dtype: Optional[str] = None) -> Optional[torch.Tensor]:
    if value is None:
        return None
    value = np.ascontiguousarray(value)
    if dtype is not None and value.dtype.kind == 'f':
        value = value.astype(dtype)
    return torch.from_numpy(value)


class OSRDetector:
    """Known-or-unknown decisions from model outputs.

    Build one with :meth:`from_outputs` (``tools/build_detector.py`` does
    it from a config and a checkpoint), :meth:`save` it, and
    :meth:`load` it where it is used (``OSRInferencer``,
    ``tools/infer.py``).

    A sample is **known** when its score is ``>= threshold``; its
    closed-set class comes from the model's logits, or, for a model
    without a classifier head, from the class-wise kNN of the bank (as in
    ``OSRMetric``'s ``pred_label``).

    Args:
        score (dict): The score config, e.g. ``dict(type='class_knn',
            k=3)``, built from ``gradmix_plugin.registry.SCORES``.
        train (dict): Stacked model outputs of the known training images
            (``feats`` / ``embeds`` / ``logits`` as needed) and their
            ``labels``.
        classes (Sequence[str]): Names of the known classes, label order.
        threshold (float): The decision threshold.
        feature (str): Vectors of the bank scores: ``'embeds'``,
            ``'feats'`` or ``'both'``. Defaults to ``'embeds'``.
        val (dict, optional): Held-out known outputs and labels, for the
            scores fitted on them. Defaults to None.
        fc_weight (np.ndarray, optional): The final linear layer's weight,
            for the scores that need it. Defaults to None.
        fc_bias (np.ndarray, optional): Its bias. Defaults to None.
        class_knn_k (int): Neighbours per class of the closed-set
            predictions of a model without logits. Defaults to 3.
        target_tpr (float, optional): The target true-positive rate the
            threshold was set at (None for a given threshold).
            Defaults to None.
        achieved_tpr (float, optional): The rate reached on the threshold
            samples. Defaults to None.
        threshold_source (str): ``'known_holdout'``, ``'training'`` (no
            held-out set: optimistic) or ``'given'``.
            Defaults to ``'given'``.
        num_threshold_samples (int): Samples the threshold was set on.
            Defaults to 0.
        provenance (dict, optional): Config, checkpoint (path, SHA-256),
            data, split, holdout, versions. Defaults to None.
    """

    def __init__(self,
                 score: dict,
                 train: Mapping[str, ArrayLike],
                 classes: Sequence[str],
                 threshold: float,
                 feature: str = 'embeds',
                 val: Optional[Mapping[str, ArrayLike]] = None,
                 fc_weight: Optional[ArrayLike] = None,
                 fc_bias: Optional[ArrayLike] = None,
                 class_knn_k: int = 3,
                 target_tpr: Optional[float] = None,
                 achieved_tpr: Optional[float] = None,
                 threshold_source: str = 'given',
                 num_threshold_samples: int = 0,
                 provenance: Optional[dict] = None) -> None:
        if threshold_source not in THRESHOLD_SOURCES:
            raise ValueError(
                f'threshold_source must be one of {THRESHOLD_SOURCES}, got '
                f'{threshold_source!r}')
        feature_keys(feature)
        self.score_cfg = dict(score)
        self.train = {k: _to_numpy(v) for k, v in train.items()}
        if 'labels' not in self.train:
            raise ValueError('train needs the labels of the bank')
        self.val = None if val is None else {
            k: _to_numpy(v)
            for k, v in val.items()
        }
        self.classes = tuple(str(c) for c in classes)
        self.threshold = float(threshold)
        self.feature = feature
        self.fc_weight = None if fc_weight is None else _to_numpy(fc_weight)
        self.fc_bias = None if fc_bias is None else _to_numpy(fc_bias)
        self.class_knn_k = int(class_knn_k)
        self.target_tpr = target_tpr
        self.achieved_tpr = achieved_tpr
        self.threshold_source = threshold_source
        self.num_threshold_samples = int(num_threshold_samples)
        self.provenance = dict(provenance or {})
        self._scorer: Optional[BaseScore] = None
        self._predictor: Optional[BaseScore] = None

    # -- what the score needs ---------------------------------------------
    @property
    def score_name(self) -> str:
        """The registry name of the score."""
        return str(self.score_cfg['type'])

    @staticmethod
    def required_keys(score: Union[str, dict, BaseScore], feature: str,
                      has_logits: bool) -> Tuple[str, ...]:
        """Model outputs a detector of ``score`` stores and reads.

        Args:
            score (str | dict | BaseScore): The score.
            feature (str): The bank-vector option.
            has_logits (bool): Whether the model gives logits.

        Returns:
            tuple[str]: Keys among ``feats``, ``embeds``, ``logits``.
        """
        score = build_score(score)
        keys = set()
        if 'feats' in score.needs:
            keys.update(('feats', ) if score.feature == 'penultimate' else
                        feature_keys(feature))
        if has_logits:
            keys.add('logits')
        else:
            keys.update(feature_keys(feature))  # class-wise kNN predictions
            if 'logits' in score.needs and 'fc' not in score.needs:
                raise DetectorMismatchError(
                    f"score '{score.name}' needs logits, but the model has "
                    'no classifier head; choose a feature score (e.g. '
                    'class_knn, knn, mahalanobis)')
        return tuple(k for k in OUTPUT_KEYS if k in keys)

    def _score_inputs(self, outputs: Mapping[str, np.ndarray],
                      scorer: BaseScore) -> dict:
        """``feats`` / ``logits`` arguments of a score."""
        feats = None
        if 'feats' in scorer.needs:
            feats = (
                np.asarray(outputs['feats'])
                if scorer.feature == 'penultimate' else bank_vectors(
                    outputs, self.feature))
        return dict(feats=feats, logits=outputs.get('logits'))

    def _fit_split(self, split: Optional[Mapping[str, np.ndarray]],
                   scorer: BaseScore) -> Optional[dict]:
        if split is None:
            return None
        fit = dict(labels=split['labels'])
        if 'logits' in split:
            fit['logits'] = split['logits']
        inputs = self._score_inputs(split, scorer)
        if inputs['feats'] is not None:
            fit['feats'] = inputs['feats']
        return fit

    @property
    def scorer(self) -> BaseScore:
        """The fitted score (fitted on first use)."""
        if self._scorer is None:
            scorer = build_score(self.score_cfg)
            scorer.fit(
                train=self._fit_split(self.train, scorer),
                val=self._fit_split(self.val, scorer),
                fc_weight=self.fc_weight,
                fc_bias=self.fc_bias)
            self._scorer = scorer
        return self._scorer

    @property
    def predictor(self) -> BaseScore:
        """The class-wise kNN giving the classes of a model without
        logits."""
        if self._predictor is None:
            predictor = build_score(dict(type='class_knn', k=self.class_knn_k))
            predictor.fit(
                train=dict(
                    feats=bank_vectors(self.train, self.feature),
                    labels=self.train['labels']))
            self._predictor = predictor
        return self._predictor

    # -- decisions ----------------------------------------------------------
    def predict(self, outputs: Mapping[str, ArrayLike]
                ) -> Dict[str, np.ndarray]:
        """Scores, decisions and closed-set predictions of a batch.

        Args:
            outputs (Mapping[str, np.ndarray | torch.Tensor]): Stacked model
                outputs ``(N, ...)`` of the keys the detector reads.

        Returns:
            dict[str, np.ndarray]: ``osr_score`` (float64), ``is_unknown``
            (bool, ``osr_score < threshold``), ``pred_label`` (int64) and
            ``pred_score`` (float64: the softmax maximum with logits, else
            the class-wise kNN score).
        """
        outputs = {k: _to_numpy(v) for k, v in outputs.items()}
        scorer = self.scorer
        scores, score_preds = scorer.score_and_predict(
            **self._score_inputs(outputs, scorer))
        logits = outputs.get('logits')
        if logits is not None:
            logits = logits.astype(np.float64)
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = shifted / shifted.sum(axis=1, keepdims=True)
            pred_label = logits.argmax(axis=1)
            pred_score = probs.max(axis=1)
        elif (self.score_name == 'class_knn' and score_preds is not None
              and getattr(scorer, 'k', None) == self.class_knn_k
              and scorer.feature == 'bank'):
            pred_label, pred_score = score_preds, scores
        else:
            pred_score, pred_label = self.predictor.score_and_predict(
                feats=bank_vectors(outputs, self.feature))
        return dict(
            osr_score=np.asarray(scores, np.float64),
            is_unknown=np.asarray(scores) < self.threshold,
            pred_label=np.asarray(pred_label, np.int64),
            pred_score=np.asarray(pred_score, np.float64))

    @property
    def input_keys(self) -> Tuple[str, ...]:
        """Model outputs :meth:`predict` reads."""
        return self.required_keys(self.score_cfg, self.feature,
                                  'logits' in self.train)

    # -- building -------------------------------------------------------------
    @classmethod
    def from_outputs(cls,
                     score: Union[str, dict],
                     train: Mapping[str, ArrayLike],
                     classes: Sequence[str],
                     val: Optional[Mapping[str, ArrayLike]] = None,
                     feature: str = 'embeds',
                     tpr: float = 0.95,
                     threshold: Optional[float] = None,
                     fc_weight: Optional[ArrayLike] = None,
                     fc_bias: Optional[ArrayLike] = None,
                     class_knn_k: int = 3,
                     provenance: Optional[dict] = None) -> 'OSRDetector':
        """Fit the score and set the threshold.

        The threshold is ``threshold`` when given, else the one keeping
        ``tpr`` of the held-out known samples ``val``
        (:func:`threshold_at_tpr`). Without ``val`` it is set on the
        training samples themselves, with a warning: the bank contains
        them, so their scores are higher than those of new known images
        and the rate on new images will be lower.

        Args:
            score (str | dict): The score name or config.
            train (Mapping): Outputs and ``labels`` of the known training
                images (the bank).
            classes (Sequence[str]): Known class names.
            val (Mapping, optional): Outputs and ``labels`` of held-out
                known images. Defaults to None.
            feature (str): Bank vectors. Defaults to ``'embeds'``.
            tpr (float): Target true-positive rate. Defaults to 0.95.
            threshold (float, optional): A given threshold instead.
                Defaults to None.
            fc_weight, fc_bias (np.ndarray, optional): The final linear
                layer. Defaults to None.
            class_knn_k (int): See :class:`OSRDetector`. Defaults to 3.
            provenance (dict, optional): Recorded as it is.
                Defaults to None.

        Returns:
            OSRDetector: The detector.
        """
        score_cfg = dict(type=score) if isinstance(score, str) else dict(
            score)
        detector = cls(
            score_cfg,
            train,
            classes,
            threshold=0.0 if threshold is None else threshold,
            feature=feature,
            val=val,
            fc_weight=fc_weight,
            fc_bias=fc_bias,
            class_knn_k=class_knn_k,
            provenance=provenance)
        if not build_score(score_cfg).uses_val:
            detector.val = None  # not stored when the score does not fit
        if threshold is not None:
            detector.threshold_source = 'given'
            return detector
        if val is None:
            print_log(
                'OSRDetector: no held-out known images, so the threshold is '
                'set on the training images, which the bank contains: the '
                f'rate of {tpr:.0%} is optimistic and new known images will '
                'be rejected more often. Hold out known images (--holdout) '
                'for a calibrated threshold.',
                logger='current',
                level=logging.WARNING)
            source, calibration = 'training', train
        else:
            source, calibration = 'known_holdout', val
        calibration = {k: _to_numpy(v) for k, v in calibration.items()}
        scores = detector.predict(calibration)['osr_score']
        detector.threshold, detector.achieved_tpr = threshold_at_tpr(
            scores, tpr)
        detector.target_tpr = float(tpr)
        detector.threshold_source = source
        detector.num_threshold_samples = int(scores.size)
        return detector

    # -- saving and loading ---------------------------------------------------
    def state(self, bank_dtype: str = 'float32') -> dict:
        """The saved form: tensors and plain Python values only.

        Args:
            bank_dtype (str): ``'float32'`` or ``'float16'`` (half the
                size; scores exact up to the float16 rounding of the bank).
                Defaults to ``'float32'``.

        Returns:
            dict: See :meth:`save`.
        """
        if bank_dtype not in BANK_DTYPES:
            raise ValueError(
                f'bank_dtype must be one of {BANK_DTYPES}, got '
                f'{bank_dtype!r}')

        def arrays(split):
            if split is None:
                return None
            return {
                k: _to_tensor(v, bank_dtype if k != 'labels' else None)
                for k, v in split.items()
            }

        return dict(
            format=DETECTOR_FORMAT,
            version=DETECTOR_VERSION,
            score=_plain(self.score_cfg),
            feature=self.feature,
            classes=list(self.classes),
            threshold=self.threshold,
            target_tpr=self.target_tpr,
            achieved_tpr=self.achieved_tpr,
            threshold_source=self.threshold_source,
            num_threshold_samples=self.num_threshold_samples,
            class_knn_k=self.class_knn_k,
            bank_dtype=bank_dtype,
            train=arrays(self.train),
            val=arrays(self.val),
            fc_weight=_to_tensor(self.fc_weight),
            fc_bias=_to_tensor(self.fc_bias),
            provenance=_plain(self.provenance))

    def save(self, path: str, bank_dtype: str = 'float32') -> str:
        """Save the detector.

        The file is ``torch.save`` of a dict of tensors (bank, labels, final
        layer) and plain values (``format``, ``version``, ``score``,
        ``feature``, ``classes``, ``threshold``, ``target_tpr``,
        ``achieved_tpr``, ``threshold_source``, ``num_threshold_samples``,
        ``class_knn_k``, ``bank_dtype``, ``provenance``), written to a
        temporary file and renamed (no half-written detector).

        Args:
            path (str): The file, e.g. ``detector.pth``.
            bank_dtype (str): See :meth:`state`. Defaults to ``'float32'``.

        Returns:
            str: ``path``.
        """
        state = self.state(bank_dtype)
        directory = osp.dirname(osp.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = f'{path}.tmp{os.getpid()}'
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls,
             path: str,
             checkpoint: Optional[str] = None,
             score: Optional[str] = None) -> 'OSRDetector':
        """Load a saved detector, executing no pickled code.

        Args:
            path (str): The detector file.
            checkpoint (str, optional): The checkpoint it will be used
                with: refused unless its SHA-256 is the one the detector
                was built from. Defaults to None (not checked).
            score (str, optional): The score the caller expects: refused
                if the detector has another. Defaults to None.

        Returns:
            OSRDetector: The detector (its float16 bank as float32).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            DetectorFileError: Not a detector file, or one holding other
                objects than tensors and plain values.
            DetectorMismatchError: Another checkpoint or score.
        """
        if not osp.isfile(path):
            raise FileNotFoundError(f'detector file not found: {path}')
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # torch raises many types on bad files
            raise DetectorFileError(
                f'{path} is not a readable detector file (build one with '
                f'tools/build_detector.py); nothing was executed: '
                f'{type(err).__name__}: {str(err).splitlines()[0]}') from err
        if not isinstance(state, dict) or state.get(
                'format') != DETECTOR_FORMAT:
            raise DetectorFileError(
                f'{path} is not an OSRDetector file (no format '
                f'{DETECTOR_FORMAT!r}); build one with '
                'tools/build_detector.py')
        if state.get('version') != DETECTOR_VERSION:
            raise DetectorFileError(
                f'{path} has detector format version '
                f'{state.get("version")!r}, this plugin reads version '
                f'{DETECTOR_VERSION}; rebuild it with tools/build_detector.py')
        recorded = (state.get('provenance') or {}).get('checkpoint_sha256')
        if checkpoint is not None:
            actual = file_sha256(checkpoint)
            if recorded != actual:
                raise DetectorMismatchError(
                    f'detector {path} was built from checkpoint '
                    f'{(state.get("provenance") or {}).get("checkpoint")} '
                    f'(SHA-256 {recorded}), not from {checkpoint} (SHA-256 '
                    f'{actual}); build a detector for this checkpoint with '
                    'tools/build_detector.py')
        if score is not None and score != state['score']['type']:
            raise DetectorMismatchError(
                f"detector {path} uses the score '{state['score']['type']}'"
                f", not the requested '{score}'; build one with --score "
                f'{score} or drop the score option')

        def arrays(split):
            if split is None:
                return None
            return {
                k: v.float().numpy() if v.is_floating_point() else v.numpy()
                for k, v in split.items()
            }

        fc_weight, fc_bias = state.get('fc_weight'), state.get('fc_bias')
        detector = cls(
            state['score'],
            arrays(state['train']),
            state['classes'],
            state['threshold'],
            feature=state['feature'],
            val=arrays(state.get('val')),
            fc_weight=None if fc_weight is None else fc_weight.numpy(),
            fc_bias=None if fc_bias is None else fc_bias.numpy(),
            class_knn_k=state['class_knn_k'],
            target_tpr=state.get('target_tpr'),
            achieved_tpr=state.get('achieved_tpr'),
            threshold_source=state['threshold_source'],
            num_threshold_samples=state.get('num_threshold_samples', 0),
            provenance=state.get('provenance'))
        detector.bank_dtype = state.get('bank_dtype', 'float32')
        return detector

    def summary(self) -> str:
        """One line: score, threshold, rates, bank size."""
        rate = ('' if self.target_tpr is None else
                f', target TPR {self.target_tpr:.1%}, achieved '
                f'{self.achieved_tpr:.1%} on {self.num_threshold_samples} '
                f'{self.threshold_source} images')
        return (f'score {self.score_name} {self.score_cfg}, threshold '
                f'{self.threshold:.6g} ({self.threshold_source}{rate}), '
                f'bank of {len(self.train["labels"])} images, classes '
                f'{list(self.classes)}')


def _plain(value: Any) -> Any:
    """Plain Python values (dicts, lists, str, numbers, None) only."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
