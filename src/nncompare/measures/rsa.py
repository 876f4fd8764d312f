"""Representational similarity analysis and mutual nearest-neighbour alignment.

Beyond the seed papers, because users ask for them.

* ``rsa``: Spearman (or Pearson) correlation between the upper triangles of the two
  representational dissimilarity matrices (RDMs), Kriegeskorte, Mur & Bandettini (2008).
* ``mutual_knn``: mean fraction of shared k nearest neighbours of every sample in the two
  spaces (Huh, Cheung, Wang & Isola 2024, "The Platonic Representation Hypothesis", §A.1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompare._array import Array, namespace, to_numpy, to_scalar_float
from nncompare._validation import check_option, check_positive_int
from nncompare.measures._inputs import prepare_pair
from nncompare.measures._kernels import sq_distances
from nncompare.results import Result

__all__ = ["mutual_knn", "rsa"]


def _device(a: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(a)


def _rdm(xp: Any, X: Array, kind: str) -> Array:
    if kind == "euclidean":
        return xp.sqrt(sq_distances(xp, X))
    # correlation distance between samples: 1 - Pearson r of their activation patterns
    Xc = X - xp.mean(X, axis=1, keepdims=True)
    norms = xp.sqrt(xp.sum(Xc * Xc, axis=1))
    if bool(xp.any(norms == 0)):
        bad = int(xp.sum(xp.astype(norms == 0, xp.int64)))
        raise ValueError(
            f"rsa with rdm='correlation' is undefined: {bad} sample(s) have the same activation "
            "in every feature (zero variance across features). Use rdm='euclidean'."
        )
    Xn = Xc / norms[:, None]
    return 1.0 - Xn @ xp.matrix_transpose(Xn)


def _rank(xp: Any, v: Array) -> Array:
    """Average ranks (ties share the mean rank), in the input's library."""
    a = to_numpy(v)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.shape[0], dtype=np.float64)
    sa = a[order]
    i = 0
    n = a.shape[0]
    while i < n:
        j = i
        while j + 1 < n and sa[j + 1] == sa[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return xp.asarray(ranks, dtype=xp.float64, device=_device(v))


def _pearson(xp: Any, a: Array, b: Array) -> Array:
    a = a - xp.mean(a)
    b = b - xp.mean(b)
    den = xp.sqrt(xp.sum(a * a) * xp.sum(b * b))
    if to_scalar_float(den) == 0:
        raise ValueError(
            "rsa is undefined: one RDM is constant (all pairwise dissimilarities equal)."
        )
    return xp.sum(a * b) / den


def rsa(
    X: Any,
    Y: Any,
    *,
    rdm: str = "correlation",
    compare: str = "spearman",
    conv: str | None = None,
) -> Result:
    """Correlation of representational dissimilarity matrices (Kriegeskorte et al. 2008).

    Parameters
    ----------
    X, Y : arrays (n, d1), (n, d2)
    rdm : {"correlation", "euclidean"}
        Dissimilarity between two samples: 1 - Pearson correlation of their activation
        patterns (default), or Euclidean distance.
    compare : {"spearman", "pearson"}
        Correlation between the upper triangles (i < j) of the two RDMs.

    Returns
    -------
    Result
        ``value`` in [-1, 1]. O(n²) memory.
    """
    check_option("rdm", rdm, ("correlation", "euclidean"))
    check_option("compare", compare, ("spearman", "pearson"))
    X, Y = prepare_pair(X, Y, conv=conv, min_samples=3, measure="rsa")
    xp = namespace(X, Y)
    Xd, Yd = xp.astype(X, xp.float64), xp.astype(Y, xp.float64)
    n = int(X.shape[0])
    iu = np.triu_indices(n, k=1)
    flat_idx = xp.asarray(iu[0] * n + iu[1], device=_device(Xd))
    a = xp.take(xp.reshape(_rdm(xp, Xd, rdm), (-1,)), flat_idx)
    b = xp.take(xp.reshape(_rdm(xp, Yd, rdm), (-1,)), flat_idx)
    if compare == "spearman":
        a, b = _rank(xp, a), _rank(xp, b)
    value = _pearson(xp, a, b)
    return Result(
        measure="rsa",
        value=value,
        n_samples=n,
        conventions={
            "rdm": rdm,
            "compare": compare,
            "entries": "upper triangle, i < j",
            "conv": conv,
        },
    )


def mutual_knn(
    X: Any, Y: Any, *, k: int = 10, metric: str = "cosine", conv: str | None = None
) -> Result:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    For every sample i, N_X(i) and N_Y(i) are its k nearest other samples in each space;
    value = mean_i |N_X(i) ∩ N_Y(i)| / k, in [0, 1] (chance ≈ k / (n - 1)).

    Parameters
    ----------
    k : int, default 10
        Neighbours per sample; needs k < n.
    metric : {"cosine", "euclidean"}
        Neighbourhoods by cosine similarity of the (uncentred) features, as in Huh et al.,
        or by Euclidean distance.
    """
    check_option("metric", metric, ("cosine", "euclidean"))
    k = check_positive_int("k", k)
    X, Y = prepare_pair(X, Y, conv=conv, min_samples=3, measure="mutual_knn")
    n = int(X.shape[0])
    if k >= n:
        raise ValueError(f"k must be smaller than the number of samples ({n}); got k={k}.")
    xp = namespace(X, Y)
    sets = []
    for label, A in (("X", xp.astype(X, xp.float64)), ("Y", xp.astype(Y, xp.float64))):
        if not bool(xp.any(A != A[:1, :])):
            raise ValueError(
                f"mutual_knn is undefined: every sample of {label} has the same activation, so "
                "all neighbours are tied. Check the layer (dead units?) or the inputs."
            )
        if metric == "cosine":
            norms = xp.sqrt(xp.sum(A * A, axis=1))
            if bool(xp.any(norms == 0)):
                raise ValueError(
                    "mutual_knn with metric='cosine' is undefined for all-zero samples; use "
                    "metric='euclidean'."
                )
            An = A / norms[:, None]
            score = to_numpy(An @ xp.matrix_transpose(An))
        else:
            score = -to_numpy(sq_distances(xp, A))
        np.fill_diagonal(score, -np.inf)
        idx = np.argpartition(-score, k - 1, axis=1)[:, :k]
        sets.append(idx)
    hits = np.zeros(n)
    for i in range(n):
        hits[i] = np.intersect1d(sets[0][i], sets[1][i], assume_unique=True).size
    value = float(hits.mean() / k)
    return Result(
        measure="mutual_knn",
        value=np.float64(value)
        if isinstance(X, np.ndarray)
        else xp.asarray(value, dtype=xp.float64, device=_device(X)),
        n_samples=n,
        conventions={
            "k": k,
            "metric": metric,
            "self": "excluded",
            "conv": conv,
            "note": "ties between neighbours broken by index order",
        },
    )
