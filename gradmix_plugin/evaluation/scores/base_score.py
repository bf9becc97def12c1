"""The interface of every registered open-set score."""
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ..functional._utils import ArrayLike, _to_numpy

#: What a score can need: the inputs of :meth:`BaseScore.score` (``feats``,
#: ``logits``) and of :meth:`BaseScore.fit` (``bank``: training vectors
#: and labels; ``fc``: the final linear layer; ``val``: held-out known
#: samples).
NEEDS = ('feats', 'logits', 'fc', 'bank', 'val')
#: Keys of the ``train`` and ``val`` dicts of :meth:`BaseScore.fit`.
SPLIT_KEYS = ('feats', 'logits', 'labels')


class ScoreInputError(ValueError):
    """A score was given (or fitted on) inputs it cannot use."""


class BaseScore:
    """One open-set score: fit on known data, then one value per sample.

    Higher means more likely a known class. Subclasses set
    :attr:`name` (their registry name), :attr:`needs` and, for the scores
    that read feature vectors, :attr:`feature` and implement
    :meth:`_fit` (if they fit anything) and :meth:`_score`.

    Usage::

        score = SCORES.build(dict(type='react', percentile=90))
        score.fit(train=dict(feats=..., logits=..., labels=...),
                  val=None, fc_weight=W, fc_bias=b)
        values = score.score(feats=test_feats, logits=test_logits)

    Attributes:
        needs (tuple[str]): What the score needs, from :data:`NEEDS`.
        feature (str): Which vectors its ``feats`` are: ``'penultimate'``
            (the input of the final linear layer, the ``feats`` model
            output) or ``'bank'`` (the vectors ``OSRMetric``'s
            ``feature`` option selects, projection embeddings by default).
        uses_val (bool): Fits on the ``val`` split when given (falling back
            to ``train`` otherwise, recorded in :attr:`fit_info`).
    """

    name: str = ''
    needs: Tuple[str, ...] = ()
    feature: str = 'penultimate'
    uses_val: bool = False

    def __init__(self) -> None:
        self._fitted = not self.needs_fit
        #: What the last :meth:`fit` used and estimated (JSON-able).
        self.fit_info: Dict[str, Any] = {}

    @property
    def needs_fit(self) -> bool:
        """Whether :meth:`fit` must run before :meth:`score`."""
        return any(n in self.needs for n in ('fc', 'bank', 'val'))

    @property
    def hyper_params(self) -> Dict[str, Any]:
        """The constructor arguments (JSON-able) for reports."""
        return {}

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self.hyper_params.items())
        return f'{type(self).__name__}({args})'

    # -- fitting ----------------------------------------------------------
    def fit(self,
            train: Optional[Mapping[str, ArrayLike]] = None,
            val: Optional[Mapping[str, ArrayLike]] = None,
            fc_weight: Optional[ArrayLike] = None,
            fc_bias: Optional[ArrayLike] = None) -> 'BaseScore':
        """Fit the score's statistics on known data.

        Args:
            train (Mapping[str, np.ndarray], optional): The known training
                data (the bank): ``feats`` ``(M, D)``, ``logits``
                ``(M, C)`` and ``labels`` ``(M, )``, as far as the score
                needs them. Defaults to None.
            val (Mapping[str, np.ndarray], optional): Held-out known samples
                (never the test set), same keys; used by the scores with
                :attr:`uses_val` (temperature, KL matching, ReAct), which
                otherwise fit on ``train``. Defaults to None.
            fc_weight (np.ndarray, optional): Final linear layer weight
                ``(C, D)``. Defaults to None.
            fc_bias (np.ndarray, optional): Its bias ``(C, )``; zeros when
                only the weight is given. Defaults to None.

        Returns:
            BaseScore: self.
        """
        train = self._split(train, 'train')
        val = self._split(val, 'val')
        if fc_weight is not None:
            fc_weight = _to_numpy(fc_weight, 'fc_weight').astype(np.float64)
            if fc_weight.ndim != 2:
                raise ScoreInputError(
                    f'{self.name}: fc_weight must have shape (C, D), got '
                    f'{fc_weight.shape}')
            fc_bias = (np.zeros(fc_weight.shape[0]) if fc_bias is None else
                       _to_numpy(fc_bias, 'fc_bias').astype(
                           np.float64).reshape(-1))
            if fc_bias.shape != (fc_weight.shape[0], ):
                raise ScoreInputError(
                    f'{self.name}: fc_bias must have shape '
                    f'({fc_weight.shape[0]}, ), got {fc_bias.shape}')
        elif 'fc' in self.needs:
            raise ScoreInputError(
                f"score '{self.name}' needs the final linear layer "
                '(fc_weight, fc_bias) of a model with a linear classifier '
                'head; pass them to fit() or evaluate a model with such a '
                'head')
        self.fc_weight, self.fc_bias = fc_weight, fc_bias
        self._fc_weight32 = None
        fit_split = train
        if self.uses_val:
            fit_split = val if val is not None else train
            self.fit_info['fit_on'] = 'val' if val is not None else 'train'
        if ('bank' in self.needs or 'val' in self.needs) \
                and fit_split is None:
            raise ScoreInputError(
                f"score '{self.name}' is fitted on known samples; pass "
                'train=dict(feats=..., logits=..., labels=...) (OSRMetric: '
                'add OSRBankHook to custom_hooks)')
        self._fit(train, val, fit_split)
        if fit_split is not None:
            some = next(iter(fit_split.values()))
            self.fit_info['fit_size'] = int(some.shape[0])
        self._fitted = True
        return self

    def _split(self, split: Optional[Mapping[str, ArrayLike]],
               name: str) -> Optional[Dict[str, np.ndarray]]:
        if split is None:
            return None
        unknown = set(split) - set(SPLIT_KEYS)
        if unknown:
            raise ScoreInputError(
                f'{self.name}: {name} has unknown keys {sorted(unknown)}; '
                f'expected some of {SPLIT_KEYS}')
        arrays = {
            k: _to_numpy(v, f'{name}[{k!r}]')
            for k, v in split.items() if v is not None
        }
        sizes = {k: v.shape[0] for k, v in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ScoreInputError(
                f'{self.name}: the arrays of {name} have different lengths '
                f'{sizes}')
        return arrays or None

    def _fit(self, train: Optional[Dict[str, np.ndarray]],
             val: Optional[Dict[str, np.ndarray]],
             fit_split: Optional[Dict[str, np.ndarray]]) -> None:
        """Estimate the statistics; ``fit_split`` is ``val`` or
        ``train`` (see :attr:`uses_val`)."""

    def _require(self, split: Optional[Dict[str, np.ndarray]], key: str,
                 what: str = 'train') -> np.ndarray:
        if split is None or key not in split:
            raise ScoreInputError(
                f"score '{self.name}' needs the {what} {key} to fit; pass "
                f"{what}=dict({key}=...)")
        return split[key]

    def _split_logits(self, split: Dict[str, np.ndarray]) -> np.ndarray:
        """The logits of a split: given, or computed by the final layer."""
        if self.fc_weight is not None and 'feats' in split:
            return self.linear(split['feats'])
        return self._require(split, 'logits').astype(np.float64)

    def linear(self, feats: np.ndarray) -> np.ndarray:
        """``feats @ W^T + b`` of the final layer: the product in float32
        (the precision of the network, and of OpenOOD's postprocessors;
        twice as fast as float64), returned as float64."""
        if feats.shape[1] != self.fc_weight.shape[1]:
            raise ScoreInputError(
                f'{self.name}: feats have {feats.shape[1]} dimensions but '
                f'the final layer takes {self.fc_weight.shape[1]}; the '
                "score needs the 'feats' model output (the input of the "
                'final linear layer)')
        return self.linear32(feats).astype(np.float64)

    def linear32(self, feats: np.ndarray) -> np.ndarray:
        """``feats @ W^T + b`` in float32."""
        if feats.shape[1] != self.fc_weight.shape[1]:
            raise ScoreInputError(
                f'{self.name}: feats have {feats.shape[1]} dimensions but '
                f'the final layer takes {self.fc_weight.shape[1]}')
        if self._fc_weight32 is None:
            self._fc_weight32 = np.ascontiguousarray(
                self.fc_weight.T, np.float32)
            self._fc_bias32 = self.fc_bias.astype(np.float32)
        product = np.asarray(feats, np.float32) @ self._fc_weight32
        product += self._fc_bias32
        return product

    # -- scoring ----------------------------------------------------------
    def score(self,
              feats: Optional[ArrayLike] = None,
              logits: Optional[ArrayLike] = None) -> np.ndarray:
        """Scores of test samples, higher = more known.

        Args:
            feats (np.ndarray, optional): Feature vectors ``(N, D)`` (see
                :attr:`feature`). Defaults to None.
            logits (np.ndarray, optional): Logits ``(N, C)``.
                Defaults to None.

        Returns:
            np.ndarray: float64 scores ``(N, )``.
        """
        return self.score_and_predict(feats, logits)[0]

    def score_and_predict(
            self,
            feats: Optional[ArrayLike] = None,
            logits: Optional[ArrayLike] = None
    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Scores and the score's own closed-set predictions (None for
        scores that have none: the model's predictions apply)."""
        if not self._fitted:
            raise ScoreInputError(
                f"score '{self.name}' must be fitted before scoring; call "
                'fit() first')
        arrays = {}
        for key, value in (('feats', feats), ('logits', logits)):
            if value is not None:
                value = _to_numpy(value, key)
                if value.ndim != 2 or value.shape[0] == 0:
                    raise ScoreInputError(
                        f'{self.name}: {key} must have shape (N, D) with '
                        f'N > 0, got {value.shape}')
                arrays[key] = value
            elif key in self.needs and not (key == 'logits'
                                            and self.fc_weight is not None
                                            and feats is not None):
                raise ScoreInputError(
                    f"score '{self.name}' needs {key} (model outputs "
                    f"'{key}'), got None")
        if len({v.shape[0] for v in arrays.values()}) > 1:
            raise ScoreInputError(
                f'{self.name}: feats and logits have different numbers of '
                'rows')
        scores, preds = self._score(arrays.get('feats'), arrays.get('logits'))
        return np.asarray(scores, np.float64), preds

    def _score(self, feats: Optional[np.ndarray],
               logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        raise NotImplementedError

    def _logits(self, feats: Optional[np.ndarray],
                logits: Optional[np.ndarray]) -> np.ndarray:
        """Test logits: given, else computed by the final layer."""
        if logits is not None:
            return logits.astype(np.float64)
        return self.linear(feats)

    fc_weight: Optional[np.ndarray] = None
    fc_bias: Optional[np.ndarray] = None
    _fc_weight32: Optional[np.ndarray] = None
    _fc_bias32: Optional[np.ndarray] = None
