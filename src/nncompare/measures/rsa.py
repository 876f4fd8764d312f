"""Representational similarity analysis and mutual nearest-neighbour alignment.

Beyond the seed papers, because users ask for them.

* ``rdm``: the representational dissimilarity matrix (RDM) of one layer.
* ``rsa``: Spearman (or Pearson) correlation between the upper triangles of the two
  RDMs, Kriegeskorte, Mur & Bandettini (2008).
* ``mutual_knn``: mean fraction of shared k nearest neighbours of every sample in the two
  spaces (Huh, Cheung, Wang & Isola 2024, "The Platonic Representation Hypothesis", §A.1).

Ties decided by rounding
------------------------
Dissimilarities that are equal in exact arithmetic (two features: every correlation distance
is 0 or 2; duplicated samples; integer-valued features) come out of floating point a few ulps
apart, and which of two such values is larger depends on the scale of the input. Both
measures therefore treat values within the rounding bound of their computation as equal:

* RDM entries within ``tol`` of each other are tied and share their average rank, with
  ``tol = 8 (d + 2) eps`` for correlation distances and ``8 (d + 2) eps max_i ‖x_i‖²`` for
  squared Euclidean distances of the centred data (plus the error of centring data far from
  the origin); runs of values with consecutive gaps ≤ ``tol`` form one tie;
* k-NN similarities within the same bound of the k-th largest are tied, and the tie is broken
  by sample index.

The data are rescaled by a power of two before any product, and constant features (relative
to their scale) are exactly 0 after centring, so ``rsa(a X, b Y) == rsa(X, Y)`` for any finite
scales a, b > 0, and likewise for ``mutual_knn``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nncompare._array import Array, device_of, is_torch, namespace, to_numpy, to_scalar_float
from nncompare._validation import check_matrix, check_parameters
from nncompare.measures._inputs import prepare_pair
from nncompare.measures._kernels import (
    RDM_N2_ARRAYS,
    RSA_N2_ARRAYS,
    centred_features,
    centring_rounding,
    check_memory,
    check_not_all_constant,
    constant_rows,
    gram_rounding,
    input_eps,
)
from nncompare.measures._params import CONV, LAYOUT, POSITIVE_INT, Options, constrain
from nncompare.results import Result

__all__ = ["mutual_knn", "rdm", "rsa"]

EPS64 = 2.220446049250313e-16
KNN_CHUNK_ELEMENTS = 2**22  # rows of the n × n similarity matrix are formed in such blocks

SUBSAMPLE_HINT = (
    "RSA needs every pairwise dissimilarity; compare a random subset of the samples instead, "
    "e.g. idx = np.random.default_rng(0).choice(n, 5000, replace=False); "
    "nc.rsa(X[idx], Y[idx])."
)


# ------------------------------------------------------------------ dissimilarities
def _dissimilarity(
    xp: Any, X: Array, metric: str, *, label: str, measure: str
) -> tuple[Array, float, float]:
    """An (n, n) matrix ordered like the RDM, the rounding tolerance of its entries, and the
    factor by which the data were rescaled.

    For ``metric="euclidean"`` the matrix holds *squared* distances of the data times the
    factor (same order, better conditioned for ranking): Euclidean distances are
    sqrt(M) / factor. For ``"correlation"`` the correlation distances themselves (factor 1).
    Entries within the tolerance of 0 are exactly 0.
    """
    eps_in = input_eps(xp, X)
    Xd = xp.astype(X, xp.float64)
    d = int(Xd.shape[1])
    check_not_all_constant(
        xp,
        Xd,
        eps_in,
        label=label,
        measure=measure,
        consequence="all its samples are alike and its RDM is constant",
    )
    if metric == "euclidean":
        Z, factor, offset = centred_features(xp, Xd, eps_in)
        sq = xp.sum(Z * Z, axis=1)
        tol = centring_rounding(d, to_scalar_float(xp.max(sq)), offset)
        D = sq[:, None] + sq[None, :] - 2.0 * (Z @ xp.matrix_transpose(Z))
        return xp.where(D > tol, D, xp.zeros_like(D)), tol, factor
    # correlation distance between samples: 1 - Pearson r of their activation patterns
    flat = constant_rows(xp, Xd, eps_in)
    if bool(xp.any(flat)):
        bad = int(xp.sum(xp.astype(flat, xp.int64)))
        raise ValueError(
            f"{measure} with rdm='correlation' is undefined: {bad} sample(s) of {label} have "
            "the same activation in every feature (zero variance across features). Use "
            "rdm='euclidean'."
        )
    # each row scaled by its own largest magnitude (correlation ignores it): no underflow
    A = Xd.detach() if is_torch(Xd) else Xd
    rowmax = xp.max(xp.abs(A), axis=1)
    Z = Xd / rowmax[:, None]
    Zc = Z - xp.mean(Z, axis=1, keepdims=True)
    norms = xp.sqrt(xp.sum(Zc * Zc, axis=1))
    # centring a row of magnitude 1 costs ~2 eps per entry; relative to its centred norm
    min_norm = to_scalar_float(xp.min(norms.detach() if is_torch(norms) else norms))
    tol = gram_rounding(d) + 16.0 * math.sqrt(d) * EPS64 / min_norm
    Zn = Zc / norms[:, None]
    R = 1.0 - Zn @ xp.matrix_transpose(Zn)
    return xp.where(xp.abs(R) > tol, R, xp.zeros_like(R)), tol, 1.0


def _safe_sqrt(xp: Any, D: Array) -> Array:
    """sqrt with a zero (not NaN) gradient at 0."""
    pos = D > 0
    return xp.where(pos, xp.sqrt(xp.where(pos, D, xp.ones_like(D))), xp.zeros_like(D))


def _upper(xp: Any, M: Array) -> Array:
    """Entries i < j of a square matrix, row by row."""
    n = M.shape[0]
    idx = xp.arange(n, device=device_of(M))
    return M[idx[:, None] < idx[None, :]]


@constrain(metric=Options("correlation", "euclidean"), conv=CONV, layout=LAYOUT)
def rdm(
    X: Any, *, metric: str = "correlation", conv: str | None = None, layout: str | None = None
) -> Any:
    """Representational dissimilarity matrix of one layer (the RDM that :func:`rsa` compares).

    Parameters
    ----------
    X : array (n, d), or conv activations with ``conv``
        numpy array or torch tensor (torch stays torch, with autograd).
    metric : {"correlation", "euclidean"}
        1 - Pearson correlation of two samples' activation patterns (default), or the
        Euclidean distance between them.
    conv : {None, "samples", "flatten", "mean"}
        Reshape policy for convolutional activations (:func:`nncompare.reshape_conv`).
    layout : {None, "NHWC", "NCHW"}
        Where the channels of convolutional activations are. None: the array's own tag
        (:class:`nncompare.LayoutArray`; :func:`nncompare.capture` tags its output "NCHW"),
        else channels last, with a :class:`nncompare.LayoutWarning` when the shape looks
        channels first.

    Returns
    -------
    array (n, n)
        Symmetric, zero diagonal, float64; entries within rounding of 0 are exactly 0.

    Raises
    ------
    ValueError
        Every feature constant; for ``"correlation"``, a sample whose features all have the
        same value.
    InsufficientMemoryError
        The n × n matrices would not fit in the available memory.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> R = nc.rdm(np.random.default_rng(0).normal(size=(5, 3)), metric="euclidean")
    >>> R.shape
    (5, 5)
    """
    if conv is not None:
        from nncompare.measures.conv import reshape_conv

        X = reshape_conv(X, conv, layout=layout)
    X = check_matrix(X, name="X", min_samples=2)
    xp = namespace(X)
    n = int(X.shape[0])
    check_memory(
        X,
        measure="rdm",
        n_bytes=RDM_N2_ARRAYS * 8.0 * n * n,
        what="float64 n × n matrices",
        alternative="Compute it on a random subset of the samples.",
    )
    M, _, factor = _dissimilarity(xp, X, metric, label="X", measure="rdm")
    if metric == "euclidean":
        M = _safe_sqrt(xp, M) / factor
    M = 0.5 * (M + xp.matrix_transpose(M))
    eye = xp.eye(n, dtype=xp.bool, device=device_of(M))
    return xp.where(eye, xp.zeros_like(M), M)


# ------------------------------------------------------------------ ranks
def _rank(xp: Any, v: Array, tol: float = 0.0) -> Array:
    """Average ranks (1-based) of a 1-D array; values within ``tol`` of a neighbour are tied.

    With ``tol=0`` this is ``scipy.stats.rankdata(v, method="average")``; vectorised (one
    stable sort), in the input's library and on its device.
    """
    if is_torch(v):
        v = v.detach()
    m = int(v.shape[0])
    dev = device_of(v)
    order = xp.argsort(v, stable=True)
    s = xp.take(v, order)
    new = xp.concat([xp.ones((1,), dtype=xp.bool, device=dev), (s[1:] - s[:-1]) > tol])
    group = xp.cumulative_sum(xp.astype(new, xp.int64)) - 1
    starts = xp.nonzero(new)[0]
    ends = xp.concat([starts[1:], xp.asarray([m], dtype=starts.dtype, device=dev)]) - 1
    mean_rank = xp.astype(starts + ends, xp.float64) * 0.5 + 1.0
    ranks = xp.empty((m,), dtype=xp.float64, device=dev)
    ranks[order] = xp.take(mean_rank, group)
    return ranks


def _pearson(xp: Any, a: Array, b: Array) -> Array:
    a = a - xp.mean(a)
    b = b - xp.mean(b)
    den = xp.sqrt(xp.sum(a * a) * xp.sum(b * b))
    if to_scalar_float(den) == 0:
        raise ValueError(
            "rsa is undefined: one RDM is constant (all pairwise dissimilarities equal)."
        )
    return xp.sum(a * b) / den


# ------------------------------------------------------------------ gradients
_NO_GRADIENT: dict[str, Any] = {}


def _refuse_gradient(value: Array, inputs: tuple[Array, ...], message: str) -> Array:
    """``value`` connected to ``inputs`` so that ``backward()`` raises ``message``.

    For piecewise-constant measures: their true gradient is zero wherever it exists, so a
    silent zero (or torch's "does not require grad") would mislead.
    """
    grads = [t for t in inputs if is_torch(t) and t.requires_grad]
    if not grads:
        return value
    import torch

    fn = _NO_GRADIENT.get("fn")
    if fn is None:

        class _NoGradient(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, v: Any, msg: str, *args: Any) -> Any:
                ctx.msg = msg
                return v.clone()

            @staticmethod
            def backward(ctx: Any, *grad_outputs: Any) -> Any:
                raise RuntimeError(ctx.msg)

        fn = _NO_GRADIENT["fn"] = _NoGradient
    return fn.apply(value.detach(), message, *grads)


SPEARMAN_NO_GRADIENT = (
    "rsa with compare='spearman' has no gradient: ranks are piecewise constant in the "
    "inputs (their derivative is 0 wherever it exists). Use nc.rsa(X, Y, compare='pearson') "
    "for a differentiable RSA, or detach the inputs."
)
KNN_NO_GRADIENT = (
    "mutual_knn has no gradient: neighbour sets are piecewise constant in the inputs (the "
    "derivative is 0 wherever it exists). Use a differentiable measure (e.g. nc.cka), or "
    "detach the inputs."
)


# ------------------------------------------------------------------ RSA


def _rsa_inputs(
    X: Any, Y: Any, *, rdm: str, compare: str, conv: str | None, layout: str | None
) -> tuple[Any, Any, Any, int]:
    """Options checked, inputs validated, memory checked: (X, Y, namespace, n)."""
    check_parameters(rsa, {"rdm": rdm, "compare": compare})  # rsa's declaration, all paths
    X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=3, measure="rsa")
    n = int(X.shape[0])
    check_memory(
        X,
        measure="rsa",
        n_bytes=RSA_N2_ARRAYS * 8.0 * n * n,
        what="two float64 n × n dissimilarity matrices and their ranks",
        alternative=SUBSAMPLE_HINT.replace("choice(n,", f"choice({n},"),
    )
    return X, Y, namespace(X, Y), n


def _rsa_vector(xp: Any, A: Array, rdm: str, compare: str, label: str) -> Array:
    """One layer's upper-triangle RDM, ranked (Spearman) or as distances (Euclidean)."""
    M, tol, _ = _dissimilarity(xp, A, rdm, label=label, measure="rsa")
    v = _upper(xp, M)
    del M
    vd = v.detach() if is_torch(v) else v
    if to_scalar_float(xp.max(vd)) - to_scalar_float(xp.min(vd)) <= tol:
        raise ValueError(
            f"rsa is undefined: the RDM of {label} is constant (all pairwise "
            "dissimilarities equal, up to rounding), so it cannot be correlated. Check "
            "the layer or use the other rdm= option."
        )
    if compare == "spearman":
        return _rank(xp, v, tol)
    return _safe_sqrt(xp, v) if rdm == "euclidean" else v


def _rsa_result(
    xp: Any,
    vecs: list[Any],
    inputs: tuple[Any, Any],
    n: int,
    *,
    rdm: str,
    compare: str,
    conv: str | None,
) -> Result:
    """Pearson correlation of the two (ranked) RDM vectors, as rsa's result object."""
    value = _pearson(xp, vecs[0], vecs[1])
    if compare == "spearman":
        value = _refuse_gradient(value, inputs, SPEARMAN_NO_GRADIENT)
    return Result(
        measure="rsa",
        value=value,
        n_samples=n,
        conventions={
            "rdm": rdm,
            "compare": compare,
            "entries": "upper triangle, i < j",
            "ties": "average ranks; dissimilarities within rounding (8(d+2) eps relative) tie"
            if compare == "spearman"
            else None,
            "conv": conv,
        },
    )


@constrain(
    rdm=Options("correlation", "euclidean"),
    compare=Options("spearman", "pearson"),
    conv=CONV,
    layout=LAYOUT,
)
def rsa(
    X: Any,
    Y: Any,
    *,
    rdm: str = "correlation",
    compare: str = "spearman",
    conv: str | None = None,
    layout: str | None = None,
) -> Result:
    """Correlation of representational dissimilarity matrices (Kriegeskorte et al. 2008).

    Parameters
    ----------
    X, Y : arrays (n, d1), (n, d2)
    rdm : {"correlation", "euclidean"}
        Dissimilarity between two samples: 1 - Pearson correlation of their activation
        patterns (default), or Euclidean distance (see :func:`nncompare.rdm`).
    compare : {"spearman", "pearson"}
        Correlation between the upper triangles (i < j) of the two RDMs. Spearman ranks
        with ties averaged; dissimilarities within rounding of each other are tied (see the
        module notes), so the value is the same at any scale of X and Y.

    Returns
    -------
    Result
        ``value`` in [-1, 1]. O(n²) memory: an
        :class:`~nncompare.measures._kernels.InsufficientMemoryError` is raised before
        allocating when the RDMs would not fit (use a random subset of the samples).

    Notes
    -----
    Gradients: ``compare="pearson"`` is differentiable for torch inputs; with
    ``compare="spearman"`` the value is piecewise constant, and ``backward()`` raises a
    ``RuntimeError`` saying so (rather than a silent zero gradient).
    """
    X, Y, xp, n = _rsa_inputs(X, Y, rdm=rdm, compare=compare, conv=conv, layout=layout)
    vecs = [_rsa_vector(xp, A, rdm, compare, label) for label, A in (("X", X), ("Y", Y))]
    return _rsa_result(xp, vecs, (X, Y), n, rdm=rdm, compare=compare, conv=conv)


# ------------------------------------------------------------------ mutual k-NN
def _knn_side(xp: Any, A: Array, metric: str, label: str) -> tuple[Array, Array | None, float]:
    """Features whose products give the neighbour scores, squared norms, score tolerance."""
    eps_in = input_eps(xp, A)
    Ad = xp.astype(A, xp.float64)
    if is_torch(Ad):
        Ad = Ad.detach()
    d = int(Ad.shape[1])
    check_not_all_constant(
        xp,
        Ad,
        eps_in,
        label=label,
        measure="mutual_knn",
        consequence="every sample has the same activation and all neighbours are tied",
    )
    if metric == "cosine":
        rowmax = xp.max(xp.abs(Ad), axis=1)
        if bool(xp.any(rowmax == 0)):
            raise ValueError(
                "mutual_knn with metric='cosine' is undefined for all-zero samples; use "
                "metric='euclidean'."
            )
        Z = Ad / rowmax[:, None]
        Z = Z / xp.sqrt(xp.sum(Z * Z, axis=1))[:, None]
        return Z, None, gram_rounding(d)
    Z, _, offset = centred_features(xp, Ad, eps_in)
    sq = xp.sum(Z * Z, axis=1)
    return Z, sq, centring_rounding(d, to_scalar_float(xp.max(sq)), offset)


def _top_k(S: np.ndarray, k: int, tol: float) -> np.ndarray:
    """Boolean mask of each row's k largest entries; near-ties (within tol) by lowest index."""
    m = S.shape[1]
    kth = np.partition(S, m - k, axis=1)[:, m - k]
    definite = S > (kth + tol)[:, None]
    tied = (S >= (kth - tol)[:, None]) & ~definite
    need = k - definite.sum(axis=1)
    return definite | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))


@constrain(k=POSITIVE_INT, metric=Options("cosine", "euclidean"), conv=CONV, layout=LAYOUT)
def mutual_knn(
    X: Any,
    Y: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    conv: str | None = None,
    layout: str | None = None,
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

    Notes
    -----
    The n × n similarities are formed in blocks of rows (memory O(n · block), not O(n²)).
    Similarities within rounding of the k-th largest are tied and the tie is broken by sample
    index, so the value does not depend on the scale of X or Y. Not differentiable:
    ``backward()`` on a torch result raises a ``RuntimeError`` saying so.
    """
    k = int(k)  # values checked by @constrain
    X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=3, measure="mutual_knn")
    n = int(X.shape[0])
    if k >= n:
        raise ValueError(f"k must be smaller than the number of samples ({n}); got k={k}.")
    xp = namespace(X, Y)
    sides = [_knn_side(xp, A, metric, label) for label, A in (("X", X), ("Y", Y))]
    hits = np.zeros(n)
    block = max(1, min(n, KNN_CHUNK_ELEMENTS // n))
    for s in range(0, n, block):
        e = min(n, s + block)
        masks = []
        for Z, sq, tol in sides:
            P = Z[s:e, :] @ xp.matrix_transpose(Z)
            # -‖z_i - z_j‖² up to the row constant ‖z_i‖², which does not change the order
            S = to_numpy(P if sq is None else 2.0 * P - sq[None, :]).copy()
            S[np.arange(e - s), np.arange(s, e)] = -np.inf
            masks.append(_top_k(S, k, tol))
        hits[s:e] = np.sum(masks[0] & masks[1], axis=1)
    value = float(hits.mean() / k)
    out: Any
    if isinstance(X, np.ndarray):
        out = np.float64(value)
    else:
        out = _refuse_gradient(
            xp.asarray(value, dtype=xp.float64, device=device_of(X)), (X, Y), KNN_NO_GRADIENT
        )
    return Result(
        measure="mutual_knn",
        value=out,
        n_samples=n,
        conventions={
            "k": k,
            "metric": metric,
            "self": "excluded",
            "conv": conv,
            "note": "similarities within rounding of the k-th are tied; ties broken by index",
        },
    )


# ------------------------------------------------------------------ RSA of a layer grid
def rsa_cached(
    X: Any,
    Y: Any,
    *,
    keys: tuple[Any, Any],
    cache: Any,
    rdm: str = "correlation",
    compare: str = "spearman",
) -> Result:
    """:func:`rsa` of two 2-D layers, each layer's RDM vector computed once and reused.

    For layer grids (:func:`nncompare.pairwise`, :func:`nncompare.compare_models`): the
    upper-triangle RDM entries of a layer (ranked with the tie rule of :func:`rsa` for
    ``compare="spearman"``) are stored in the mapping ``cache`` under its key in ``keys``
    (one per argument; the same key must always mean the same data), and every pair is a
    correlation of two stored vectors. Value, conventions and errors are exactly those of
    ``rsa(X, Y, rdm=rdm, compare=compare)``; an undefined RDM is stored as its message.
    Each vector holds n(n - 1)/2 float64: ``cache`` may evict entries to bound memory.
    """
    X, Y, xp, n = _rsa_inputs(X, Y, rdm=rdm, compare=compare, conv=None, layout=None)
    vecs = []
    for label, A, key in (("X", X, keys[0]), ("Y", Y, keys[1])):
        ck = (key, rdm, compare, type(A).__module__, str(A.dtype), n)
        v = cache.get(ck)
        if isinstance(v, tuple) and v[0] == label:  # this layer's RDM is undefined
            raise ValueError(v[1])
        if v is None or isinstance(v, tuple):
            try:
                v = _rsa_vector(xp, A, rdm, compare, label)
            except ValueError as exc:  # an undefined RDM is remembered as its message
                cache[ck] = (label, str(exc))
                raise
            cache[ck] = v
        vecs.append(v)
    return _rsa_result(xp, vecs, (X, Y), n, rdm=rdm, compare=compare, conv=None)
