"""Gaussian models of a labelled bank and the Mahalanobis score."""
import warnings
from typing import Optional, Tuple, Union

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.spatial.distance import cdist
from sklearn.covariance import ledoit_wolf, shrunk_covariance

from ._utils import ArrayLike, _check_vectors, _to_numpy

#: Largest condition number of the tied covariance that
#: :func:`fit_tied_gaussian` accepts without shrinkage (``'auto'``).
MAHALANOBIS_MAX_CONDITION = 1e10


def _bank_classes(bank: np.ndarray, bank_labels: ArrayLike
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted bank classes and each vector's index into them."""
    bank_labels = _to_numpy(bank_labels, 'bank_labels').reshape(-1)
    if bank_labels.shape != (bank.shape[0], ):
        raise ValueError(
            f'bank_labels must have shape ({bank.shape[0]}, ), got '
            f'{bank_labels.shape}')
    if (not np.issubdtype(bank_labels.dtype, np.integer)
            or (bank_labels < 0).any()):
        raise ValueError(
            'bank_labels must be known classes (integers >= 0), found '
            f'{np.unique(bank_labels)[:10]}')
    return np.unique(bank_labels, return_inverse=True)


def _condition_number(covariance: np.ndarray) -> float:
    """Largest over smallest eigenvalue; inf if it is not positive."""
    eigenvalues = np.linalg.eigvalsh(covariance)
    return (float(eigenvalues[-1] / eigenvalues[0])
            if eigenvalues[0] > 0 else float('inf'))


def fit_tied_gaussian(bank: ArrayLike,
                      bank_labels: ArrayLike,
                      shrinkage: Union[str, float] = 'auto',
                      max_condition: float = MAHALANOBIS_MAX_CONDITION
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Class means and one shared (tied) covariance of a labelled bank.

    Note:
        The covariance is the maximum-likelihood estimate of Lee et al.
        2018, :math:`\Sigma = \frac{1}{M} \sum_i (x_i - \mu_{y_i})
        (x_i - \mu_{y_i})^T` over all ``M`` bank vectors. Features with
        (almost) no variance, e.g. channels that ReLU keeps at zero, or
        fewer vectors than dimensions make it singular, and its inverse
        meaningless. ``shrinkage`` decides:

        - ``'auto'``: :math:`\Sigma` itself if its condition number is at
          most ``max_condition``, else a ``UserWarning`` and the Ledoit-Wolf
          estimate;
        - ``'ledoit_wolf'``: always ``sklearn.covariance.ledoit_wolf`` of
          the class-centred vectors, :math:`(1 - a) \Sigma + a
          \frac{\mathrm{tr} \Sigma}{D} I` with the coefficient ``a``
          that Ledoit and Wolf (2004) derive from the data;
        - a float ``a`` in ``[0, 1]``: that coefficient
          (``sklearn.covariance.shrunk_covariance``; 0 keeps
          :math:`\Sigma`).

        A covariance that is still singular (condition number ``>= 1 /
        eps`` of float64, e.g. ``shrinkage=0`` on rank-deficient features,
        or zero variance) raises ``ValueError``.

    Args:
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        bank_labels (np.ndarray | torch.Tensor): Their classes, integers
            ``>= 0``, shape ``(M, )``.
        shrinkage (str | float): ``'auto'``, ``'ledoit_wolf'`` or a
            coefficient in ``[0, 1]``. Defaults to ``'auto'``.
        max_condition (float): Largest condition number ``'auto'`` accepts
            unshrunk. Defaults to :data:`MAHALANOBIS_MAX_CONDITION` (1e10).

    Returns:
        tuple[np.ndarray]: The sorted classes ``(C, )``, the float64 class
        means ``(C, D)`` and the covariance ``(D, D)``.
    """
    bank = _to_numpy(bank, 'bank').astype(np.float64)
    _check_vectors(bank, 'bank')
    classes, inverse = _bank_classes(bank, bank_labels)
    means = np.zeros((classes.size, bank.shape[1]))
    np.add.at(means, inverse, bank)
    means /= np.bincount(inverse)[:, None]
    centered = bank - means[inverse]
    covariance = centered.T @ centered / bank.shape[0]
    if isinstance(shrinkage, str):
        if shrinkage not in ('auto', 'ledoit_wolf'):
            raise ValueError(
                "shrinkage must be 'auto', 'ledoit_wolf' or a float in "
                f'[0, 1], got {shrinkage!r}')
        condition = _condition_number(covariance)
        if shrinkage == 'ledoit_wolf' or condition > max_condition:
            covariance, coefficient = ledoit_wolf(
                centered, assume_centered=True)
        if shrinkage == 'auto' and condition > max_condition:
            warnings.warn(
                'mahalanobis: the tied covariance of the bank '
                f'({bank.shape[0]} vectors, {bank.shape[1]} dimensions, '
                f'{classes.size} classes) has condition number '
                f'{condition:.3g} > max_condition={max_condition:.3g}; '
                'using the Ledoit-Wolf estimate (shrinkage coefficient '
                f'{coefficient:.3g} towards a multiple of the identity)',
                stacklevel=3)
    elif (isinstance(shrinkage, bool)
          or not isinstance(shrinkage, (float, int, np.floating))
          or not 0 <= shrinkage <= 1):
        raise ValueError(
            "shrinkage must be 'auto', 'ledoit_wolf' or a float in [0, 1], "
            f'got {shrinkage!r}')
    elif shrinkage > 0:
        covariance = shrunk_covariance(covariance, float(shrinkage))
    # Beyond 1 / eps the inverse is rounding noise.
    if not _condition_number(covariance) < 1 / np.finfo(np.float64).eps:
        raise ValueError(
            'mahalanobis: the tied covariance of the bank is singular '
            f'(condition number {_condition_number(covariance):.3g}, trace '
            f'{np.trace(covariance):.3g}, shrinkage={shrinkage!r}); a zero '
            'trace means every bank vector equals its class mean, otherwise '
            "use shrinkage='auto' or 'ledoit_wolf'")
    return classes, means, covariance


def mahalanobis_scores(query: ArrayLike,
                       bank: ArrayLike,
                       bank_labels: ArrayLike,
                       shrinkage: Union[str, float] = 'auto',
                       fitted: Optional[Tuple[np.ndarray, np.ndarray,
                                              np.ndarray]] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    r"""Mahalanobis score with class means and a tied covariance.

    `A Simple Unified Framework for Detecting Out-of-Distribution Samples
    and Adversarial Attacks <https://arxiv.org/abs/1807.03888>`_ (Lee et
    al. 2018), without input preprocessing or layer ensembles.

    Note:
        With the class means :math:`\mu_c` and covariance :math:`\Sigma`
        of :func:`fit_tied_gaussian`, the score is
        :math:`\max_c -(q - \mu_c)^T \Sigma^{-1} (q - \mu_c)`, minus the
        smallest squared Mahalanobis distance (higher = more known), and
        the prediction is the class of that mean. Vectorised: with the
        Cholesky factor :math:`\Sigma = L L^T`, queries and means are
        whitened once (:math:`L^{-1} x`, a triangular solve) and the
        distances are squared Euclidean distances between whitened vectors
        (``scipy.spatial.distance.cdist``), O(N D^2 + N C D).

    Args:
        query (np.ndarray | torch.Tensor): Test vectors ``(N, D)``.
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        bank_labels (np.ndarray | torch.Tensor): Their classes ``(M, )``.
        shrinkage (str | float): Covariance shrinkage, see
            :func:`fit_tied_gaussian`. Defaults to ``'auto'``.
        fitted (tuple[np.ndarray], optional): The result of
            :func:`fit_tied_gaussian` for this bank, to skip refitting.
            Defaults to None.

    Returns:
        tuple[np.ndarray, np.ndarray]: float64 scores and int64 predictions
        (bank labels), both of shape ``(N, )``.
    """
    query = _to_numpy(query, 'query').astype(np.float64)
    _check_vectors(query, 'query')
    classes, means, covariance = fitted or fit_tied_gaussian(
        bank, bank_labels, shrinkage)
    if query.shape[1] != means.shape[1]:
        raise ValueError(
            f'query dimension {query.shape[1]} != bank dimension '
            f'{means.shape[1]}')
    factor = cholesky(covariance, lower=True)
    distances = cdist(
        solve_triangular(factor, query.T, lower=True).T,
        solve_triangular(factor, means.T, lower=True).T, 'sqeuclidean')
    nearest = distances.argmin(axis=1)
    return (-distances[np.arange(query.shape[0]), nearest],
            classes[nearest].astype(np.int64))
