import math
from typing import Optional, Tuple

import numpy as np
from scipy.optimize import brentq

from ...registry import SCORES
from ._posthoc import probabilities
from .base_score import BaseScore, ScoreInputError

#: Bracket of the inverse temperature searched by the fit.
INVERSE_TEMPERATURE_RANGE = (1e-4, 1e4)


def temperature_nll_gradient(beta: float, logits: np.ndarray,
                             labels: np.ndarray) -> float:
    r"""Derivative in :math:`\beta = 1 / T` of the mean negative
    log-likelihood of ``softmax(beta * logits)``:
    :math:`\frac{1}{N}\sum_i (\sum_c p_{ic} l_{ic} - l_{i y_i})`
    (increasing: the NLL is convex in :math:`\beta`)."""
    probs = probabilities(beta * logits)
    return float(np.mean((probs * logits).sum(axis=1) -
                         logits[np.arange(labels.size), labels]))


@SCORES.register_module('temp_scaling')
class TemperatureScalingScore(BaseScore):
    r"""Maximum softmax probability of temperature-scaled logits,
    :math:`\max_c \mathrm{softmax}(l / T)_c`, with :math:`T` fitted to
    minimise the negative log-likelihood of the held-out known samples.

    `On Calibration of Modern Neural Networks
    <https://arxiv.org/abs/1706.04599>`_ (Guo et al. 2017); OpenOOD
    ``temp_scaling`` (``TemperatureScalingPostprocessor``), which runs
    ``torch.optim.LBFGS`` (lr 0.01, 50 iterations) from :math:`T = 1.5` on
    the ID validation set. The NLL is convex in :math:`1 / T`, so this fit
    solves its stationarity condition exactly (``scipy.optimize.brentq``)
    instead, reaching the same minimiser to solver precision. If the NLL
    decreases over the whole bracket
    (:data:`INVERSE_TEMPERATURE_RANGE`, e.g. every sample classified
    correctly with growing margins) the bound is used and recorded.

    Args:
        temperature (float, optional): A fixed temperature instead of the
            fit. Defaults to None (fitted).
    """
    name = 'temp_scaling'
    needs = ('logits', 'val')
    uses_val = True

    def __init__(self, temperature: Optional[float] = None) -> None:
        super().__init__()
        if temperature is not None and (
                isinstance(temperature, bool)
                or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ValueError(
                'temp_scaling: temperature must be a number > 0 or None, '
                f'got {temperature!r}')
        self.fixed_temperature = temperature
        if temperature is not None:
            self.temperature = float(temperature)
            self._fitted = True

    @property
    def hyper_params(self) -> dict:
        return dict(temperature=self.fixed_temperature)

    def _fit(self, train, val, fit_split) -> None:
        if self.fixed_temperature is not None:
            self.temperature = float(self.fixed_temperature)
            self.fit_info['temperature'] = self.temperature
            return
        logits = self._split_logits(fit_split)
        labels = self._require(fit_split, 'labels',
                               self.fit_info.get('fit_on', 'train'))
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ScoreInputError(
                'temp_scaling: the fit labels must lie in [0, '
                f'{logits.shape[1]}), found {labels.min()}..{labels.max()}')
        low, high = INVERSE_TEMPERATURE_RANGE
        g_low = temperature_nll_gradient(low, logits, labels)
        g_high = temperature_nll_gradient(high, logits, labels)
        if g_low >= 0:
            beta = low
        elif g_high <= 0:
            beta = high
        else:
            beta = brentq(temperature_nll_gradient, low, high,
                          args=(logits, labels), xtol=1e-12, rtol=1e-12)
        self.temperature = 1.0 / beta
        self.fit_info['temperature'] = self.temperature
        self.fit_info['at_bound'] = beta in (low, high)
        self.fit_info['nll'] = float(-np.mean(
            np.log(probabilities(logits * beta)[np.arange(labels.size),
                                                labels])))

    def _score(self, feats: Optional[np.ndarray], logits: np.ndarray
               ) -> Tuple[np.ndarray, None]:
        probs = probabilities(logits.astype(np.float64) / self.temperature)
        return probs.max(axis=1), None
