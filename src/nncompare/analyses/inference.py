"""Statistics on similarity values: bootstrap intervals, permutation tests, null baselines.

Every function here takes a registry measure (``nc.measures.get(name)``) and the two
activation matrices over the same samples (numpy or torch; the statistics are floats):

* :func:`bootstrap` — a percentile confidence interval over samples. ``method="samples"``
  is the ordinary nonparametric (i.i.d.) bootstrap: each replicate draws n samples with
  replacement (a multinomial reweighting of the samples) and recomputes the measure.
  ``method="blocks"`` (streaming measures only) splits the samples into ``n_blocks``
  contiguous blocks, accumulates one :class:`nncompare.Moments` per block once, and forms
  each replicate by an exact merge of ``k_b`` copies of block ``b`` with multinomial
  counts ``k`` (``sum k = n_blocks``); a replicate costs ``n_blocks`` merges of the
  second moments, not a product over the samples. It is the bootstrap *of blocks*: it
  equals the i.i.d. bootstrap of blocks, which approximates the sample bootstrap when the
  blocks are exchangeable (the samples are in random order, e.g. a shuffled loader) and
  there are many of them (its variance estimate has about ``n_blocks - 1`` degrees of
  freedom: use 50 or more). Ordered data (by class, by time) make it wrong.
  :func:`bootstrap_blocks` takes the per-shard moments directly (a streamed pipeline).
* :func:`permutation_test` — the null of no association between X and Y: the rows of Y are
  shuffled (the pairing of samples broken), ``n_perm`` times; the p-value is
  ``(1 + #{null at least as similar as observed}) / (1 + n_perm)`` (one-sided, towards
  "more similar": larger values, or smaller for a distance).
* :func:`rotation_baseline` — X and Y rotated by independent Haar-random orthogonal
  matrices: the values a measure that is *not* rotation invariant gives to the same
  information expressed in other axes.
  For measures declared invariant to ``"orthogonal"`` (registry) it equals the value and
  says so.

The front doors (:func:`nncompare.compare_models`, :func:`~nncompare.compare_checkpoints`,
:func:`~nncompare.pairwise`) take ``ci=``, ``n_boot=``, ``n_perm=``, ``baseline=`` and add
the columns of :data:`COLUMNS` to the tidy result (see :func:`annotate`); with
``baseline="random_network"`` :func:`nncompare.compare_models` also compares model A with
a re-initialised copy of model B (:func:`random_copy`).

Calibration (``benchmarks/calibration.py``, results in
``benchmarks/results/calibration.json``): 150 draws of a planted Gaussian model (p = q = 5,
canonical correlations 0.9, 0.6, 0.3, 0, 0), 200 replicates, nominal 95%; coverage of the
basic / percentile interval:

============  ===================  ===================
measure       n = 100              n = 400
============  ===================  ===================
cka           0.91 / 0.61          0.93 / 0.87
cka_debiased  0.87 / 0.88          0.90 / 0.93
cca           0.75 / 0.01          0.84 / 0.18
cca_r2        0.96 / 0.24          0.93 / 0.77
============  ===================  ===================

The percentile interval inherits the estimator's bias (linear CKA +0.042 at n = 100,
+0.008 at n = 400; the mean canonical correlation +0.065 / +0.027, its small population
correlations being pushed up), and the replicates add it once more; the basic interval
(the default) reflects them about the estimate and removes the part of the bias the
bootstrap sees. The bootstrap sees about half of it for ``cca`` (+0.032 of +0.065), hence
its under-coverage even so. The bootstrap of debiased CKA is biased in the other sense:
the estimator is nearly unbiased (+0.006), but a resample repeats samples, the repeated
pairs enter off the diagonal of the kernel matrices, and the replicates sit +0.034 above
it at n = 100 (+0.009 at n = 400); for it the percentile interval (``interval=
"percentile"``) is the better one. The bootstrap of 50 blocks of moments (``method=
"blocks"``, n = 400, blocks of 8 samples) covers a little less than that of samples:
cka 0.90 / 0.85, cca 0.83 / 0.17. Its replicate costs 50 merges of the second moments
instead of a product over the samples: slower than resampling at n = 400 and 10 features
(Python overhead), three times faster at n = 20000 and 2 × 128 features.
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._array import is_torch
from nncompare._validation import NNCompareWarning
from nncompare.measures._registry import ORTHOGONAL
from nncompare.measures._registry import get as get_measure
from nncompare.stats import Moments

__all__ = [
    "BASELINES",
    "COLUMNS",
    "Inference",
    "InferenceSettings",
    "NullDistribution",
    "annotate",
    "bootstrap",
    "bootstrap_blocks",
    "check_conv",
    "check_settings",
    "compute",
    "group_sizes",
    "haar_orthogonal",
    "interval",
    "permutation_test",
    "random_copy",
    "random_network_outcomes",
    "rotation_baseline",
]

#: The null baselines the front doors take (``baseline=``).
BASELINES: tuple[str, ...] = ("permutation", "rotation", "random_network")
#: Columns added to the tidy result, by what asks for them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "ci": ("ci_low", "ci_high", "boot_se"),
    "n_perm": ("p_value", "null_mean", "null_sd"),
    "permutation": ("baseline_permutation",),
    "rotation": ("baseline_rotation",),
    "random_network": ("baseline_random_network",),
}
METHODS = ("samples", "blocks")
#: The interval kinds of :func:`interval`.
INTERVALS = ("percentile", "basic", "bc")
_MAX_FAILED = 0.1  # more failed replicates than this fraction: no interval, a note


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class Inference:
    """A bootstrap confidence interval of one measure on one pair.

    Attributes
    ----------
    measure : str
    value : float
        The measure on all samples (the point estimate).
    ci_low, ci_high : float
        The interval (:func:`interval`; by default the basic one, the quantiles
        ``(1 -/+ ci) / 2`` of the replicates reflected about ``value``). NaN when more than
        10% of the replicates failed.
    ci : float
        The confidence level.
    method : {"samples", "blocks"}
        The i.i.d. bootstrap of samples, or of blocks of moments (see the module notes).
    replicates : ndarray, shape (n_boot,)
        The bootstrap values (NaN where a replicate failed).
    n_failed : int
        Replicates whose measure was undefined (e.g. CCA with too few distinct samples).
    interval : {"percentile", "basic", "bc"}
        How ``ci_low``/``ci_high`` were read off the replicates (:func:`interval`).
    """

    measure: str
    value: float
    ci_low: float
    ci_high: float
    ci: float
    method: str
    replicates: np.ndarray = field(repr=False)
    n_failed: int = 0
    interval: str = "basic"

    @property
    def n_boot(self) -> int:
        return int(self.replicates.size)

    @property
    def boot_mean(self) -> float:
        """Mean of the successful replicates."""
        ok = self.replicates[np.isfinite(self.replicates)]
        return float(ok.mean()) if ok.size else math.nan

    @property
    def boot_se(self) -> float:
        """Standard deviation of the successful replicates (the bootstrap standard error)."""
        ok = self.replicates[np.isfinite(self.replicates)]
        return float(ok.std(ddof=1)) if ok.size > 1 else math.nan

    @property
    def bias(self) -> float:
        """The bootstrap estimate of the bias: ``boot_mean - value``."""
        return self.boot_mean - self.value


@dataclass(frozen=True)
class NullDistribution:
    """The values of a measure under a null transformation of Y (shuffled rows, rotations).

    Attributes
    ----------
    measure : str
    kind : {"permutation", "rotation"}
    value : float
        The measure on the data as they are.
    null : ndarray
        One value per draw (NaN where the measure was undefined).
    p_value : float
        ``(1 + #{draws at least as similar as value}) / (1 + draws)``; one-sided towards
        "more similar" (larger values, smaller for a distance).
    note : str or None
        Why the distribution is uninformative (a rotation of a rotation-invariant measure).
    """

    measure: str
    kind: str
    value: float
    null: np.ndarray = field(repr=False)
    p_value: float = math.nan
    note: str | None = None

    @property
    def null_mean(self) -> float:
        ok = self.null[np.isfinite(self.null)]
        return float(ok.mean()) if ok.size else math.nan

    @property
    def null_sd(self) -> float:
        ok = self.null[np.isfinite(self.null)]
        return float(ok.std(ddof=1)) if ok.size > 1 else math.nan


# ---------------------------------------------------------------------- checks
def _check_count(name: str, value: Any, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be an integer >= {low} (the number of draws); got {value!r}. "
            f"Pass e.g. {name}=1000."
        )
    if value < low:
        raise ValueError(
            f"{name} must be >= {low} (the number of draws); got {value}. Pass e.g. {name}=1000"
            + (", or 0 to skip it." if allow_zero else ".")
        )
    return int(value)


def _check_ci(ci: Any) -> float:
    if isinstance(ci, bool) or not isinstance(ci, int | float | np.floating):
        raise TypeError(
            f"ci must be a confidence level strictly between 0 and 1, e.g. 0.95; got {ci!r}."
        )
    v = float(ci)
    if not 0.0 < v < 1.0:
        hint = " (a percentage? pass ci=0.95 for 95%)" if 1 < v <= 100 else ""
        raise ValueError(
            f"ci must be a confidence level strictly between 0 and 1, e.g. 0.95; got {ci!r}{hint}."
        )
    return v


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer or None; got {seed!r}.")
    return int(seed)


def _info(measure: str) -> Any:
    if not isinstance(measure, str):
        raise TypeError(
            f"measure must be a registry name such as 'cka' (nc.measures.available()); "
            f"got {type(measure).__name__}."
        )
    info = get_measure(measure)
    if info.input != "activations":
        raise ValueError(
            f"{measure} compares (d, d) covariance matrices, not samples, so there is nothing "
            "to resample or permute; use an activation measure (nc.measures.available()) or "
            "bootstrap the covariances yourself."
        )
    return info


def _rows(X: Any, Y: Any, group_size: int) -> int:
    nx, ny = int(X.shape[0]), int(Y.shape[0])
    if nx != ny:
        raise ValueError(
            f"X and Y must hold the same samples (rows); got {nx} and {ny} rows. Pass the "
            "activations of both layers for the same inputs, in the same order."
        )
    g = int(group_size)
    if g < 1 or nx % g:
        raise ValueError(
            f"group_size must divide the number of rows ({nx}); got {group_size}. With "
            "conv='samples' it is the number of locations per input (H*W)."
        )
    n = nx // g
    if n < 3:
        raise ValueError(
            f"resampling needs at least 3 samples; got {n}. Pass more inputs (a few hundred)."
        )
    return n


def _take(A: Any, rows: np.ndarray) -> Any:
    if is_torch(A):
        import torch

        return A[torch.as_tensor(rows, device=A.device)]
    return A[rows]


def _expand(idx: np.ndarray, g: int) -> np.ndarray:
    """Sample indices -> row indices (each sample owns ``g`` consecutive rows)."""
    if g == 1:
        return idx
    return (idx[:, None] * g + np.arange(g)[None, :]).reshape(-1)


def _value(fn: Any, X: Any, Y: Any, options: Mapping[str, Any]) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NNCompareWarning)
            return float(fn(X, Y, **options))
    except ValueError:
        return math.nan


def interval(
    replicates: Any, value: float, ci: float = 0.95, kind: str = "basic"
) -> tuple[float, float]:
    """A bootstrap interval from the replicates (NaN replicates left out).

    Parameters
    ----------
    replicates : array of float
    value : float
        The point estimate on all samples.
    ci : float
        Confidence level in (0, 1).
    kind : {"basic", "percentile", "bc"}, default "basic"
        ``"percentile"``: the ``(1 -/+ ci) / 2`` quantiles of the replicates.
        ``"basic"``: those quantiles reflected about the estimate,
        ``(2 value - q_high, 2 value - q_low)``, which moves the interval against the
        bias the replicates show. ``"bc"``: the bias-corrected percentile interval (Efron
        1981): quantiles at ``Phi(2 z0 -/+ z)``, ``z0 = Phi^-1(fraction of replicates below
        value)``.

    Returns
    -------
    (low, high) : tuple of float
    """
    from scipy.stats import norm

    level = _check_ci(ci)
    if kind not in INTERVALS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, INTERVALS))}; got {kind!r}.")
    reps = np.asarray(replicates, dtype=np.float64)
    ok = reps[np.isfinite(reps)]
    if ok.size < 2 or not np.isfinite(value):
        return math.nan, math.nan
    a = (1.0 - level) / 2.0
    if kind == "bc":
        below = (np.count_nonzero(ok < value) + 0.5 * np.count_nonzero(ok == value)) / ok.size
        z0 = float(norm.ppf(min(max(below, 0.5 / ok.size), 1 - 0.5 / ok.size)))
        z = float(norm.ppf(1 - a))
        lo, hi = np.quantile(ok, [norm.cdf(2 * z0 - z), norm.cdf(2 * z0 + z)])
        return float(lo), float(hi)
    lo, hi = np.quantile(ok, [a, 1.0 - a])
    if kind == "basic":
        return float(2 * value - hi), float(2 * value - lo)
    return float(lo), float(hi)


def _interval(
    reps: np.ndarray, ci: float, value: float = math.nan, kind: str = "basic"
) -> tuple[float, float, int]:
    failed = int(np.count_nonzero(~np.isfinite(reps)))
    if np.count_nonzero(np.isfinite(reps)) < 2 or failed > _MAX_FAILED * reps.size:
        return math.nan, math.nan, failed
    lo, hi = interval(reps, value, ci, kind)
    return lo, hi, failed


def _p_value(value: float, null: np.ndarray, higher_is_better: bool) -> float:
    ok = null[np.isfinite(null)]
    if not np.isfinite(value) or ok.size == 0:
        return math.nan
    tol = 1e-12 * max(1.0, abs(value))  # ties (up to rounding) count as "as similar"
    hits = np.count_nonzero(ok >= value - tol if higher_is_better else ok <= value + tol)
    return float((1 + hits) / (1 + ok.size))


# ---------------------------------------------------------------------- library API
def bootstrap(
    measure: str,
    X: Any,
    Y: Any,
    *,
    ci: float = 0.95,
    n_boot: int = 1000,
    method: str = "samples",
    n_blocks: int = 50,
    seed: int | None = None,
    group_size: int = 1,
    interval: str = "basic",
    **options: Any,
) -> Inference:
    """Bootstrap confidence interval of ``measure`` between ``X`` and ``Y`` over samples.

    Parameters
    ----------
    measure : str
        A registry name (``nc.measures.available()``), e.g. ``"cka"``.
    X, Y : array, shape (n, d1), (n, d2)
        Activations of the same n samples (numpy or torch).
    ci : float, default 0.95
        Confidence level, strictly between 0 and 1.
    n_boot : int, default 1000
        Replicates.
    method : {"samples", "blocks"}
        ``"samples"``: the i.i.d. nonparametric bootstrap (n samples drawn with
        replacement per replicate). ``"blocks"``: the bootstrap of ``n_blocks`` contiguous
        blocks of samples from per-block moments (streaming measures only; assumes the
        samples are in random order; see the module notes).
    n_blocks : int, default 50
        Blocks of ``method="blocks"``.
    seed : int, optional
        Seed of the resampling (numpy's default generator).
    group_size : int, default 1
        Rows per sample: rows ``[i*g, (i+1)*g)`` are resampled together (the locations of
        one input with ``conv="samples"``).
    interval : {"basic", "percentile", "bc"}, default "basic"
        How the interval is read off the replicates (:func:`interval`). The basic
        interval moves against the bias the replicates show; it covers best for the biased
        estimators (linear CKA, the CCA family; see the module notes).
    **options
        The measure's options (e.g. ``variance=0.99`` for SVCCA).

    Returns
    -------
    Inference
        ``value``, ``ci_low``, ``ci_high``, ``replicates``, ``boot_se``, ``bias``.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)); Y = X @ rng.normal(size=(5, 4)) + rng.normal(size=(300, 4))
    >>> r = nc.analyses.bootstrap("cka", X, Y, n_boot=200, seed=0)
    >>> r.ci_low <= r.value <= r.ci_high
    True
    """
    info = _info(measure)
    level = _check_ci(ci)
    n_boot = _check_count("n_boot", n_boot)
    if method not in METHODS:
        raise ValueError(
            f"method must be 'samples' (the i.i.d. bootstrap) or 'blocks' (blocks of "
            f"moments, streaming measures); got {method!r}."
        )
    if interval not in INTERVALS:
        raise ValueError(
            f"interval must be one of {', '.join(map(repr, INTERVALS))}; got {interval!r}."
        )
    n = _rows(X, Y, group_size)
    g = int(group_size)
    seed = _check_seed(seed)
    fn = info.function
    info.check_options(options)
    value = float(fn(X, Y, **options))
    rng = np.random.default_rng(seed)
    if method == "blocks":
        if not info.streaming:
            raise ValueError(
                f"method='blocks' resamples moments, and {measure} needs the samples "
                "themselves (not a streaming measure); use method='samples'."
            )
        n_blocks = _check_count("n_blocks", n_blocks)
        if n_blocks < 2 or n_blocks > n:
            raise ValueError(
                f"n_blocks must lie in [2, {n}] (at most one block per sample); got {n_blocks}."
            )
        edges = np.linspace(0, n, n_blocks + 1).round().astype(int) * g
        blocks = [Moments.from_arrays(X[s:e], Y[s:e]) for s, e in itertools.pairwise(edges)]
        reps = _block_replicates(fn, blocks, n_boot, rng, options)
    else:
        reps = np.empty(n_boot)
        for b in range(n_boot):
            rows = _expand(rng.integers(0, n, size=n), g)
            reps[b] = _value(fn, _take(X, rows), _take(Y, rows), options)
    lo, hi, failed = _interval(reps, level, value, interval)
    return Inference(measure, value, lo, hi, level, method, reps, failed, interval)


def _block_replicates(
    fn: Any, blocks: Sequence[Moments], n_boot: int, rng: np.random.Generator, options: Any
) -> np.ndarray:
    B = len(blocks)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        counts = rng.multinomial(B, np.full(B, 1.0 / B))
        m = Moments()
        for block, k in zip(blocks, counts, strict=True):
            for _ in range(int(k)):
                m.merge(block)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NNCompareWarning)
                reps[b] = float(fn(m, **options))
        except ValueError:
            reps[b] = math.nan
    return reps


def bootstrap_blocks(
    measure: str,
    blocks: Sequence[Moments],
    *,
    ci: float = 0.95,
    n_boot: int = 1000,
    seed: int | None = None,
    interval: str = "basic",
    **options: Any,
) -> Inference:
    """Block bootstrap of a streaming measure from per-block moments (e.g. one per shard).

    Each replicate merges (exactly) ``k_b`` copies of block ``b``, with multinomial counts
    summing to the number of blocks. It is the i.i.d. bootstrap of the blocks: valid when
    the blocks are exchangeable (random order of samples, equal sizes) and many (50 or
    more); with few blocks the interval is too narrow.

    Parameters
    ----------
    measure : str
        A streaming registry measure (``nc.measures.get(measure).streaming``).
    blocks : sequence of nncompare.Moments
        Moments of disjoint blocks of samples of the same pair of layers, at least 2.
    ci, n_boot, seed, interval, **options
        As in :func:`bootstrap`.

    Returns
    -------
    Inference
        ``method="blocks"``; ``value`` is the measure on all blocks merged.
    """
    info = _info(measure)
    if not info.streaming:
        raise ValueError(
            f"{measure} needs the samples themselves (not a streaming measure), so its "
            "bootstrap cannot come from moments; use nc.analyses.bootstrap on the arrays."
        )
    level = _check_ci(ci)
    n_boot = _check_count("n_boot", n_boot)
    blocks = list(blocks)
    if len(blocks) < 2 or not all(isinstance(b, Moments) for b in blocks):
        raise ValueError(
            "blocks must be a sequence of at least 2 nncompare.Moments (one per block of "
            f"samples); got {len(blocks)} item(s) of type(s) "
            f"{sorted({type(b).__name__ for b in blocks})}."
        )
    info.check_options(options)
    whole = Moments()
    for b in blocks:
        whole.merge(b)
    value = float(info.function(whole, **options))
    reps = _block_replicates(
        info.function, blocks, n_boot, np.random.default_rng(_check_seed(seed)), options
    )
    lo, hi, failed = _interval(reps, level, value, interval)
    return Inference(measure, value, lo, hi, level, "blocks", reps, failed, interval)


def permutation_test(
    measure: str,
    X: Any,
    Y: Any,
    *,
    n_perm: int = 1000,
    seed: int | None = None,
    group_size: int = 1,
    **options: Any,
) -> NullDistribution:
    """Permutation test of association: the measure with the samples of Y shuffled.

    Parameters
    ----------
    measure : str
        A registry name.
    X, Y : array, shape (n, d1), (n, d2)
        Activations of the same n samples.
    n_perm : int, default 1000
        Permutations.
    seed : int, optional
    group_size : int, default 1
        Rows per sample; a sample's rows move together.
    **options
        The measure's options.

    Returns
    -------
    NullDistribution
        ``kind="permutation"``, ``null``, ``p_value`` (one-sided towards more similar),
        ``null_mean``, ``null_sd``.
    """
    info = _info(measure)
    n_perm = _check_count("n_perm", n_perm)
    n = _rows(X, Y, group_size)
    info.check_options(options)
    fn = info.function
    value = float(fn(X, Y, **options))
    rng = np.random.default_rng(_check_seed(seed))
    null = np.empty(n_perm)
    for b in range(n_perm):
        rows = _expand(rng.permutation(n), int(group_size))
        null[b] = _value(fn, X, _take(Y, rows), options)
    p = _p_value(value, null, info.higher_is_better)
    return NullDistribution(measure, "permutation", value, null, p)


def haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A (d, d) orthogonal matrix drawn from the Haar measure (QR of a Gaussian matrix,
    signs fixed by the diagonal of R; Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]


def _rotated(A: Any, q: np.ndarray) -> Any:
    if is_torch(A):
        import torch

        return A @ torch.as_tensor(q, dtype=A.dtype, device=A.device)
    A = np.asarray(A)
    return A @ q.astype(np.result_type(A.dtype, np.float32), copy=False)


def rotation_baseline(
    measure: str,
    X: Any,
    Y: Any,
    *,
    n_rot: int = 100,
    seed: int | None = None,
    **options: Any,
) -> NullDistribution:
    """The measure with X and Y each rotated by an independent Haar-random orthogonal
    matrix, ``n_rot`` times.

    For a measure not invariant to rotations (``pwcca``, whose weights are read in X's
    axes, ``rsa`` with a correlation metric, the covariance measures) the spread of these
    values shows how much of the value is owed to the axes the data happen to be
    expressed in. For a measure the registry
    declares invariant to ``"orthogonal"`` every draw equals the value (up to rounding)
    and ``note`` says so. ``p_value`` is the fraction (with the +1 correction) of rotations
    at least as similar as the data.

    Parameters
    ----------
    measure : str
    X, Y : array, shape (n, d1), (n, d2)
    n_rot : int, default 100
    seed : int, optional
    **options
        The measure's options.

    Returns
    -------
    NullDistribution
        ``kind="rotation"``.
    """
    info = _info(measure)
    n_rot = _check_count("n_rot", n_rot)
    _rows(X, Y, 1)
    if Y.ndim != 2:
        raise ValueError(
            f"rotation_baseline needs 2-D activations (n, d); got Y with shape "
            f"{tuple(Y.shape)}. Reshape convolutional outputs first (nc.reshape_conv)."
        )
    info.check_options(options)
    fn = info.function
    value = float(fn(X, Y, **options))
    rng = np.random.default_rng(_check_seed(seed))
    if X.ndim != 2:
        raise ValueError(
            f"rotation_baseline needs 2-D activations (n, d); got X with shape "
            f"{tuple(X.shape)}. Reshape convolutional outputs first (nc.reshape_conv)."
        )
    null = np.empty(n_rot)
    for b in range(n_rot):
        Xr = _rotated(X, haar_orthogonal(int(X.shape[1]), rng))
        Yr = _rotated(Y, haar_orthogonal(int(Y.shape[1]), rng))
        null[b] = _value(fn, Xr, Yr, options)
    note = None
    if ORTHOGONAL in info.invariances:
        note = (
            f"{measure} is invariant to orthogonal transformations (registry), so the "
            "rotation baseline equals the value and carries no information."
        )
    p = _p_value(value, null, info.higher_is_better)
    return NullDistribution(measure, "rotation", value, null, p, note)


# ---------------------------------------------------------------------- random networks
def random_copy(model: Any, seed: int = 0) -> Any:
    """A re-initialised deep copy of ``model``: every module's ``reset_parameters()`` with
    torch seeded from ``seed`` (through a seed sequence, so that ``seed=0`` does not
    replay the initialisation of a model built after ``torch.manual_seed(0)``), inside a
    forked RNG (the caller's torch RNG state and the
    model itself are untouched). Modules holding parameters of their own but no
    ``reset_parameters`` keep their values, with an :class:`NNCompareWarning` naming them.
    """
    import torch

    rnd = copy.deepcopy(model)
    devices = sorted({p.device.index or 0 for p in rnd.parameters() if p.device.type == "cuda"})
    kept = []
    with torch.random.fork_rng(devices=devices):
        # a stream of its own: seed 0 here must not replay a model built after manual_seed(0)
        torch.manual_seed(int(np.random.SeedSequence([int(seed), 0x52414E44]).generate_state(1)[0]))
        with torch.no_grad():
            for name, mod in rnd.named_modules():
                reset = getattr(mod, "reset_parameters", None)
                if callable(reset):
                    reset()
                elif any(True for _ in mod.parameters(recurse=False)):
                    kept.append(name or type(mod).__name__)
    if kept:
        warnings.warn(
            "random_network baseline: module(s) "
            + ", ".join(kept[:5])
            + (" ..." if len(kept) > 5 else "")
            + " have parameters but no reset_parameters(), so they keep their trained values "
            "in the re-initialised copy.",
            NNCompareWarning,
            stacklevel=2,
        )
    return rnd


# ---------------------------------------------------------------------- front doors
@dataclass(frozen=True)
class InferenceSettings:
    """What the front doors were asked for (checked once, before any data is read)."""

    ci: float | None = None
    n_boot: int = 1000
    n_perm: int = 0
    baselines: tuple[str, ...] = ()
    method: str = "samples"
    n_blocks: int = 50
    seed: int = 0
    n_null: int = 100
    interval: str = "basic"

    @property
    def needs_arrays(self) -> bool:
        return (
            self.ci is not None
            or self.n_perm > 0
            or any(b in self.baselines for b in ("permutation", "rotation"))
        )

    def columns(self) -> list[str]:
        out: list[str] = []
        if self.ci is not None:
            out += COLUMNS["ci"]
        if self.n_perm:
            out += COLUMNS["n_perm"]
        for b in self.baselines:
            out += COLUMNS[b]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "n_boot": self.n_boot if self.ci is not None else None,
            "bootstrap": (
                None
                if self.ci is None
                else f"{self.interval} interval; "
                + (
                    "i.i.d. bootstrap of samples"
                    if self.method == "samples"
                    else f"bootstrap of {self.n_blocks} blocks of moments (streaming measures)"
                )
            ),
            "n_perm": self.n_perm,
            "baselines": list(self.baselines),
            "n_null": self.n_null,
            "seed": self.seed,
        }


def check_settings(
    ci: Any = None,
    n_boot: Any = 1000,
    n_perm: Any = 0,
    baseline: Any = None,
    *,
    bootstrap: Any = "samples",
    seed: Any = 0,
    interval: Any = "basic",
    allowed: Sequence[str] = BASELINES,
    where: str = "compare_models",
) -> InferenceSettings | None:
    """The checked settings, or None when nothing is asked for (the default path)."""
    n_boot = _check_count("n_boot", n_boot)
    n_perm = _check_count("n_perm", n_perm, allow_zero=True)
    level = None if ci is None else _check_ci(ci)
    if baseline is None:
        bases: tuple[str, ...] = ()
    else:
        items = (baseline,) if isinstance(baseline, str) else tuple(baseline)
        for b in items:
            if b not in BASELINES:
                raise ValueError(
                    f"baseline must be one of {', '.join(map(repr, BASELINES))} (or a list of "
                    f"them); got {b!r}."
                )
            if b not in allowed:
                raise ValueError(
                    f"baseline={b!r} needs a model to re-initialise, which {where} does not "
                    "have; use nc.compare_models(model_a, model_b, data, "
                    "baseline='random_network')."
                )
        bases = tuple(dict.fromkeys(items))
    method, n_blocks = bootstrap, 50
    if isinstance(bootstrap, tuple) and len(bootstrap) == 2 and bootstrap[0] == "blocks":
        method, n_blocks = "blocks", _check_count("n_blocks", bootstrap[1])
    if method not in METHODS:
        raise ValueError(
            "bootstrap must be 'samples' (the i.i.d. bootstrap), 'blocks' (50 blocks of "
            f"moments) or ('blocks', n_blocks); got {bootstrap!r}."
        )
    seed_ = _check_seed(seed)
    if interval not in INTERVALS:
        raise ValueError(
            f"interval must be one of {', '.join(map(repr, INTERVALS))}; got {interval!r}."
        )
    if level is None and not n_perm and not bases:
        return None
    return InferenceSettings(
        ci=level,
        n_boot=n_boot,
        n_perm=n_perm,
        baselines=bases,
        method=method,
        n_blocks=n_blocks,
        seed=0 if seed_ is None else seed_,
        n_null=n_perm or 100,
        interval=interval,
    )


def check_conv(settings: InferenceSettings | None, conv: str) -> None:
    """Refuse statistics that resample activation matrices with ``conv="dft"``."""
    if settings is not None and settings.needs_arrays and conv == "dft":
        raise ValueError(
            "ci, n_perm and the permutation/rotation baselines resample the samples of "
            "activation matrices, which conv='dft' does not keep; use conv='mean' (or "
            "'flatten') for the statistics, or baseline='random_network' alone."
        )


@dataclass
class StatsTask:
    """One (measure, pair) of a comparison whose statistics are computed."""

    measure: str
    index: int
    a: Any
    b: Any
    value: float


@dataclass
class StatsRunner:
    """What an executor calls per :class:`StatsTask`: the asked-for statistics of one
    (measure, pair) from the kept arrays (picklable; no locks or models)."""

    acc: Any
    spec: Mapping[str, dict[str, Any]]
    settings: InferenceSettings
    group: Mapping[Any, int]

    def __call__(self, t: StatsTask) -> tuple[dict[str, float], list[str]]:
        s = self.settings
        cols = dict.fromkeys([c for c in s.columns() if c != "baseline_random_network"], math.nan)
        notes: list[str] = []
        if not np.isfinite(t.value):
            return cols, notes
        X, Y = self.acc.array(t.a), self.acc.array(t.b)
        g = int(self.group.get(t.a, 1))
        opts = dict(self.spec[t.measure])
        info = get_measure(t.measure)
        mi = list(self.spec).index(t.measure)
        seed = [s.seed, mi, t.index]
        if s.ci is not None:
            method = s.method if info.streaming else "samples"
            try:
                r = bootstrap(
                    t.measure, X, Y, ci=s.ci, n_boot=s.n_boot, method=method, interval=s.interval,
                    n_blocks=min(s.n_blocks, X.shape[0] // g), group_size=g,
                    **opts, **_rng_kw(seed, 0),
                )  # fmt: skip
                cols.update(ci_low=r.ci_low, ci_high=r.ci_high, boot_se=r.boot_se)
                if r.n_failed:
                    notes.append(
                        f"bootstrap: {r.n_failed} of {r.n_boot} replicates undefined"
                        + (" (no interval)" if not np.isfinite(r.ci_low) else "")
                        + "."
                    )
            except ValueError as exc:
                notes.append(f"bootstrap: {exc}")
        if s.n_perm or "permutation" in s.baselines:
            try:
                p = permutation_test(
                    t.measure, X, Y, n_perm=s.n_null, group_size=g, **opts, **_rng_kw(seed, 1)
                )
                if s.n_perm:
                    cols.update(p_value=p.p_value, null_mean=p.null_mean, null_sd=p.null_sd)
                if "permutation" in s.baselines:
                    cols["baseline_permutation"] = p.null_mean
            except ValueError as exc:
                notes.append(f"permutation: {exc}")
        if "rotation" in s.baselines:
            if ORTHOGONAL in info.invariances:
                notes.append(
                    f"rotation baseline skipped: {t.measure} is invariant to orthogonal "
                    "transformations (registry), so it would equal the value."
                )
            elif g != 1:
                notes.append("rotation baseline skipped: not defined with conv='samples'.")
            else:
                try:
                    r = rotation_baseline(
                        t.measure, X, Y, n_rot=s.n_null, **opts, **_rng_kw(seed, 2)
                    )
                    cols["baseline_rotation"] = r.null_mean
                except ValueError as exc:
                    notes.append(f"rotation baseline: {exc}")
        return cols, notes


def _rng_kw(seed: list[int], stream: int) -> dict[str, Any]:
    """A seed for one (measure, pair, statistic): independent of the executor and order."""
    ss = np.random.SeedSequence([*seed, stream])
    return {"seed": int(ss.generate_state(1, dtype=np.uint32)[0])}


def compute(
    acc: Any,
    pairs: Sequence[Any],
    spec: Mapping[str, dict[str, Any]],
    outcomes: Mapping[str, Sequence[Any]],
    settings: InferenceSettings,
    *,
    executor: Any = None,
    group: Mapping[Any, int] | None = None,
) -> list[tuple[StatsTask, dict[str, float], list[str]]]:
    """The statistics of every outcome: ``(task, columns, notes)`` in outcome order.

    ``acc`` must keep the arrays of every key. The (measure, pair) tasks are mapped by
    ``executor`` (None: in this process); each task's draws are seeded from
    ``settings.seed``, the measure and the pair, so the numbers do not depend on the
    executor or the order.
    """
    tasks = [
        StatsTask(m, o.index, pairs[o.index][0], pairs[o.index][1], o.value)
        for m, outs in outcomes.items()
        for o in outs
    ]
    runner = StatsRunner(acc, dict(spec), settings, dict(group or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNCompareWarning)
        got = [runner(t) for t in tasks] if executor is None else list(executor.map(runner, tasks))
    return [(t, cols, notes) for t, (cols, notes) in zip(tasks, got, strict=True)]


def group_sizes(acc: Any) -> dict[Any, int]:
    """Rows per input of every kept array (``conv="samples"``: the locations per image)."""
    n = max(int(acc.n_samples), 1)
    return {k: max(sum(int(p.shape[0]) for p in parts) // n, 1) for k, parts in acc.arrays.items()}


def annotate(
    frame: Any,
    acc: Any,
    pairs: Sequence[Any],
    spec: Mapping[str, dict[str, Any]],
    outcomes: Mapping[str, Sequence[Any]],
    settings: InferenceSettings,
    *,
    executor: Any = None,
    random_outcomes: Mapping[str, Sequence[Any]] | None = None,
) -> Any:
    """Add the statistics of ``settings`` as columns of the tidy ``frame`` (in place).

    ``frame`` has one row per outcome, in the order of ``outcomes`` (measure by measure,
    pairs in order), as :func:`nncompare.analyses.engine.tidy_rows` makes it; the columns
    (:data:`COLUMNS`) go before ``error``. ``random_outcomes``: the outcomes of the same
    pairs against the re-initialised model (``baseline_random_network``). The notes of the
    statistics join the ``note`` column.
    """
    got: list[tuple[StatsTask, dict[str, float], list[str]]] = []
    if settings.needs_arrays:
        got = compute(
            acc, pairs, spec, outcomes, settings, executor=executor, group=group_sizes(acc)
        )
    else:
        got = [
            (StatsTask(m, o.index, None, None, o.value), {}, [])
            for m, outs in outcomes.items()
            for o in outs
        ]
    if len(got) != len(frame):
        raise RuntimeError(f"internal: {len(got)} outcomes for {len(frame)} rows.")
    at = list(frame.columns).index("error") if "error" in frame else len(frame.columns)
    for c in settings.columns():
        if c == "baseline_random_network":
            rnd = {
                (m, o.index): o.value for m, outs in (random_outcomes or {}).items() for o in outs
            }
            col = [rnd.get((t.measure, t.index), math.nan) for t, _, _ in got]
        else:
            col = [cols[c] for _, cols, _ in got]
        frame.insert(at, c, col)
        at += 1
    if "note" in frame and any(notes for _, _, notes in got):
        old = frame["note"].tolist()
        frame["note"] = [
            " ".join(([o] if isinstance(o, str) and o else []) + notes) or None
            for o, (_, _, notes) in zip(old, got, strict=True)
        ]
    return frame


def random_network_outcomes(
    sources: Mapping[str, tuple[Any, list[str]]],
    pairs: Sequence[Any],
    spec: Mapping[str, dict[str, Any]],
    data: Any,
    *,
    executor: Any = None,
    **capture: Any,
) -> dict[str, list[Any]]:
    """The measures on ``pairs`` of ``sources`` (one holding a :func:`random_copy`), in one
    more pass over ``data``: the outcomes of the random-network baseline, by pair index."""
    from nncompare.analyses.engine import capture_sources, evaluate

    keep = any(not get_measure(m).streaming for m in spec)
    racc = capture_sources(
        dict(sources), data, keep_arrays=keep, pairs=list(pairs), progress=False, **capture
    )
    return evaluate(racc, list(pairs), spec, executor=executor)
