"""The PWCCA robustness toy of Morcos, Raghu & Bengio (2018, §2.3, Fig. 2).

Two "networks" share a signal of fixed dimensionality and each adds its own unshared noise
of fixed dimensionality; :func:`signal_noise_pair` generates them, and
:func:`signal_noise_curves` measures mean CCA, SVCCA and PWCCA against the ratio of signal
to noise dimensions. The unweighted mean counts every canonical direction alike, so it falls
as the noise dimensions grow; the projection weighting discounts the directions that
account for little of the representation, and stays nearer the shared structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SignalNoisePair", "signal_noise_curves", "signal_noise_pair"]

TOY_MEASURES = ("cca", "svcca", "pwcca")


@dataclass
class SignalNoisePair:
    """Two representations with a shared signal and unshared noise.

    ``x = [signal, noise_x] @ mix_x`` and ``y = [signal, noise_y] @ mix_y`` with random
    orthogonal ``mix_*`` of size ``n_signal + n_noise``: each has ``n_signal + n_noise``
    units of rank exactly that, and exactly ``n_signal`` dimensions in common.

    Attributes
    ----------
    x, y : ndarray of shape (n_samples, n_signal + n_noise)
    signal : ndarray of shape (n_samples, n_signal)
        The shared latent (standard normal).
    noise_x, noise_y : ndarray of shape (n_samples, n_noise)
        Each side's own noise (normal with standard deviation ``noise_scale``).
    mix_x, mix_y : ndarray of shape (n_units, n_units)
        The orthogonal mixings.
    """

    x: np.ndarray
    y: np.ndarray
    signal: np.ndarray
    noise_x: np.ndarray
    noise_y: np.ndarray
    mix_x: np.ndarray
    mix_y: np.ndarray

    @property
    def n_signal(self) -> int:
        return int(self.signal.shape[1])

    @property
    def n_noise(self) -> int:
        return int(self.noise_x.shape[1])


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} ({value!r}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def _orthogonal(rng: np.random.Generator, k: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(k, k)))
    return q * np.sign(np.diag(r))


def signal_noise_pair(
    n_samples: int,
    n_signal: int,
    n_noise: int,
    *,
    noise_scale: float = 0.5,
    seed: int = 0,
) -> SignalNoisePair:
    """Generate the toy: a shared signal plus each side's unshared noise, mixed orthogonally.

    Parameters
    ----------
    n_samples : int
        Rows; should be well above ``n_signal + n_noise`` (else chance correlations of the
        noise dimensions inflate the canonical correlations).
    n_signal : int, >= 1
        Dimensions shared by both sides.
    n_noise : int, >= 0
        Dimensions of each side's own noise (independent between the sides).
    noise_scale : float, default 0.5
        Standard deviation of the noise (the signal's is 1).
    seed : int, default 0

    Returns
    -------
    SignalNoisePair

    Examples
    --------
    >>> toy = signal_noise_pair(2000, 10, 30)
    >>> toy.x.shape, toy.n_signal, toy.n_noise
    ((2000, 40), 10, 30)
    """
    n_samples = _count("n_samples", n_samples, 2)
    n_signal = _count("n_signal", n_signal, 1)
    n_noise = _count("n_noise", n_noise, 0)
    scale = float(noise_scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"noise_scale must be a positive finite number; got {noise_scale!r}.")
    k = n_signal + n_noise
    if n_samples <= k:
        raise ValueError(
            f"n_samples ({n_samples}) must exceed n_signal + n_noise ({k}): with fewer rows "
            "than units every direction is perfectly correlated. Use more samples."
        )
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_samples, n_signal))
    noise_x = rng.normal(size=(n_samples, n_noise)) * scale
    noise_y = rng.normal(size=(n_samples, n_noise)) * scale
    mix_x, mix_y = _orthogonal(rng, k), _orthogonal(rng, k)
    x = np.concatenate([signal, noise_x], axis=1) @ mix_x
    y = np.concatenate([signal, noise_y], axis=1) @ mix_y
    return SignalNoisePair(x, y, signal, noise_x, noise_y, mix_x, mix_y)


def signal_noise_curves(
    n_noise: Sequence[int] = (0, 5, 10, 20, 40, 80),
    *,
    n_signal: int = 10,
    n_samples: int = 4000,
    noise_scale: float = 0.5,
    seeds: Sequence[int] = (0, 1, 2),
    measures: Sequence[str] = TOY_MEASURES,
) -> Any:
    """Mean CCA, SVCCA and PWCCA of the toy against the ratio of signal to noise dimensions.

    Parameters
    ----------
    n_noise : sequence of int
        Noise dimensions per side, one point of the curves each.
    n_signal, n_samples, noise_scale
        As in :func:`signal_noise_pair`.
    seeds : sequence of int
        One toy per seed and point.
    measures : sequence of str, default ("cca", "svcca", "pwcca")
        Any similarity measures of :mod:`nncompare.measures` (default options).

    Returns
    -------
    pandas.DataFrame
        One row per (n_noise, seed, measure): ``n_signal``, ``n_noise``, ``ratio``
        (``n_signal / n_noise``, inf without noise), ``seed``, ``measure``, ``value``, and
        ``signal_variance`` (the signal's share of each side's variance,
        ``n_signal / (n_signal + noise_scale² · n_noise)``).
    """
    import pandas as pd

    from nncompare.measures._registry import similarity

    if not len(n_noise) or not len(seeds):
        raise ValueError(
            f"n_noise and seeds must be non-empty; got {list(n_noise)} and {list(seeds)}."
        )
    rows = []
    for dn in n_noise:
        for s in seeds:
            toy = signal_noise_pair(n_samples, n_signal, dn, noise_scale=noise_scale, seed=s)
            for m in measures:
                rows.append(
                    {
                        "n_signal": n_signal,
                        "n_noise": int(dn),
                        "ratio": n_signal / dn if dn else float("inf"),
                        "seed": int(s),
                        "measure": m,
                        "value": similarity(toy.x, toy.y, m),
                        "signal_variance": n_signal / (n_signal + noise_scale**2 * dn),
                    }
                )
    return pd.DataFrame(rows)
