import math
from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ..functional.logit import logit_scores
from .base_score import BaseScore


@SCORES.register_module('energy')
class EnergyScore(BaseScore):
    r"""Negative free energy, :math:`T \log \sum_c \exp(l_c / T)`.

    `Energy-based Out-of-distribution Detection
    <https://arxiv.org/abs/2010.03759>`_ (Liu et al. 2020); OpenOOD ``ebo``
    (temperature 1).

    Args:
        temperature (float): ``T > 0``. Defaults to 1.0.
    """
    name = 'energy'
    needs = ('logits', )

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if (isinstance(temperature, bool)
                or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ValueError(
                'energy: temperature must be a finite number > 0, got '
                f'{temperature!r}')
        self.temperature = float(temperature)

    @property
    def hyper_params(self) -> dict:
        return dict(temperature=self.temperature)

    def _score(self, feats: Optional[np.ndarray], logits: np.ndarray
               ) -> Tuple[np.ndarray, None]:
        return logit_scores(logits, 'energy', self.temperature), None
