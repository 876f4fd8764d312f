"""Mergeable streaming statistics.

Every linear measure of nncompare (the CCA family, linear CKA, linear regression
R², Procrustes and the shape metrics) is a function of the sample means and the
centred second moments of the activations. :class:`JointMoments` accumulates
those exactly, batch by batch, with memory independent of the number of samples;
two accumulators fed with different parts of a data set merge into the one fed
with all of it (the pairwise update of Chan, Golub & LeVeque 1979). Because the
cross-products of *all* pairs of layers come from one joint product of the
concatenated batch, a layer × layer grid costs one pass and one product per
batch.

:class:`MinibatchCKA` accumulates the unbiased HSIC estimator over minibatches
(Nguyen, Raghu & Kornblith 2021), for kernel CKA at any number of samples.

References
----------
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979). Updating formulae and a pairwise
algorithm for computing sample variances. Stanford CS report STAN-CS-79-773.
Nguyen, T., Raghu, M. & Kornblith, S. (2021). Do wide and deep networks learn the same
things? ICLR 2021, Section 3.1 (minibatch CKA).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, float_dtype, harmonize, is_torch, namespace
from nncompare._validation import check_finite, check_option

__all__ = ["JointMoments", "MinibatchCKA", "Moments"]


@dataclass(frozen=True)
class _Block:
    name: str
    start: int
    stop: int

    @property
    def dim(self) -> int:
        return self.stop - self.start


class JointMoments:
    """Joint means and centred second moments of several activation matrices.

    Feed batches of activations of any number of named layers over the same samples;
    the accumulator keeps, in the working precision (float64 by default):

    * ``n``: the number of samples seen;
    * ``mean``: the feature means, shape (D,), D the total number of features;
    * ``comoment``: the centred sums of products
      :math:`C = \\sum_s (z_s - \\bar z)(z_s - \\bar z)^T`, shape (D, D);
    * ``minimum`` / ``maximum``: per-feature extremes (a feature is constant iff they are equal).

    Memory is O(D²), independent of the number of samples. ``update`` costs one
    symmetric product of the (batch, D) centred batch; ``merge`` combines two
    accumulators exactly.

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"
        Precision of the accumulators. Activations of any float type are upcast.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> acts = {"a": rng.normal(size=(100, 5)), "b": rng.normal(size=(100, 3))}
    >>> jm = nc.JointMoments()
    >>> for s in range(0, 100, 25):
    ...     _ = jm.update({k: v[s:s + 25] for k, v in acts.items()})
    >>> round(float(nc.cca(jm.pair("a", "b"))), 6) == round(float(nc.cca(acts["a"], acts["b"])), 6)
    True
    """

    def __init__(self, *, dtype: str = "float64") -> None:
        check_option("dtype", dtype, ("float64", "float32"))
        self.dtype_name = dtype
        self.n = 0
        self.blocks: dict[str, _Block] = {}
        self.mean: Array | None = None
        self.comoment: Array | None = None
        self.minimum: Array | None = None
        self.maximum: Array | None = None
        self._xp: Any = None
        self._side_cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ basics
    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    @property
    def dims(self) -> dict[str, int]:
        return {k: b.dim for k, b in self.blocks.items()}

    @property
    def xp(self) -> Any:
        if self._xp is None:
            raise ValueError("This accumulator is empty: call update() with a batch first.")
        return self._xp

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}: {b.dim}" for k, b in self.blocks.items())
        return f"{type(self).__name__}(n={self.n}, blocks={{{dims}}}, dtype={self.dtype_name})"

    def _init_layout(self, batches: Mapping[str, Array]) -> None:
        start = 0
        for name, arr in batches.items():
            d = int(arr.shape[1])
            self.blocks[name] = _Block(str(name), start, start + d)
            start += d

    # ------------------------------------------------------------------ update
    def update(self, batches: Mapping[str, Any], *, validated: bool = False) -> JointMoments:
        """Add one batch: a mapping ``name -> (batch_size, d_name)`` array over the same samples.

        ``validated=True`` skips the finiteness check for arrays the caller already checked.
        """
        if not isinstance(batches, Mapping) or not batches:
            raise TypeError(
                "update() expects a non-empty mapping {layer_name: (batch_size, n_features) "
                f"array}}; got {type(batches).__name__}."
            )
        arrays = {str(k): as_array(v, name=str(k)) for k, v in batches.items()}
        names = list(arrays)
        first = arrays[names[0]]
        for k in names[1:]:
            _, arrays[k] = harmonize(first, arrays[k])
        sizes = {k: (a.shape[0] if a.ndim >= 1 else None) for k, a in arrays.items()}
        for k, a in arrays.items():
            if a.ndim != 2:
                raise ValueError(
                    f"batch {k!r} must be 2-D (batch_size, n_features); "
                    f"got shape {tuple(a.shape)}. "
                    "Reshape convolutional activations first (nc.reshape_conv)."
                )
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"all batches must hold the same samples; got batch sizes {sizes}. "
                "Pass activations of every layer for the same inputs."
            )
        if self.blocks:
            if names != list(self.blocks) or any(
                arrays[k].shape[1] != self.blocks[k].dim for k in names
            ):
                raise ValueError(
                    "batch layout differs from earlier batches: expected layers "
                    f"{self.dims}, got { ({k: int(arrays[k].shape[1]) for k in names}) }. "
                    "Feed the same layers, in the same order, with the same widths."
                )
        if not validated:
            for k, a in arrays.items():
                check_finite(a, name=f"batch {k!r}")
        nb = int(first.shape[0])
        if nb == 0:
            return self
        xp = namespace(*arrays.values())
        if self._xp is not None and xp is not self._xp:
            raise TypeError(
                "batches must come from one array library; this accumulator holds "
                f"{self._xp.__name__} arrays but got {xp.__name__}."
            )
        dt = float_dtype(xp, self.dtype_name)
        if not self.blocks:
            self._init_layout(arrays)
        mean_b, com_b, lo_b, hi_b = _batch_moments(xp, [arrays[k] for k in names], dt)
        self._merge_raw(xp, nb, mean_b, com_b, lo_b, hi_b)
        return self

    def _merge_raw(
        self, xp: Any, nb: int, mean_b: Array, com_b: Array, lo_b: Array, hi_b: Array
    ) -> None:
        self._side_cache.clear()
        if self.n == 0:
            self._xp = xp
            self.n, self.mean, self.comoment = nb, mean_b, com_b
            self.minimum, self.maximum = lo_b, hi_b
            return
        na = self.n
        n = na + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.comoment = self.comoment + com_b + (na * nb / n) * (delta[:, None] * delta[None, :])
        self.minimum = xp.minimum(self.minimum, lo_b)
        self.maximum = xp.maximum(self.maximum, hi_b)
        self.n = n

    def merge(self, other: JointMoments) -> JointMoments:
        """Fold another accumulator (fed with other samples of the same layers) into this one."""
        if not isinstance(other, JointMoments):
            raise TypeError(f"merge() expects a {type(self).__name__}; got {type(other).__name__}.")
        if other.n == 0:
            return self
        if self.n and (list(self.blocks) != list(other.blocks) or self.dims != other.dims):
            raise ValueError(
                f"cannot merge accumulators of different layers: {self.dims} vs {other.dims}."
            )
        if not self.blocks:
            self.blocks = dict(other.blocks)
        xp = other._xp
        self._merge_raw(xp, other.n, other.mean, other.comoment, other.minimum, other.maximum)
        return self

    # ------------------------------------------------------------------ views
    def block(self, name: str) -> _Block:
        try:
            return self.blocks[name]
        except KeyError:
            raise KeyError(
                f"no layer {name!r} in this accumulator; it holds {list(self.blocks)}."
            ) from None

    def pair(self, a: str, b: str) -> Moments:
        """A :class:`Moments` view of layers ``a`` (as X) and ``b`` (as Y); no data is copied.

        Per-layer preparations (eigen-decompositions) are cached on this accumulator, so a
        grid of pairs decomposes each layer's covariance once.
        """
        ba, bb = self.block(a), self.block(b)
        m = Moments(dtype=self.dtype_name)
        m._xp = self._xp
        m.n = self.n
        sa, sb = slice(ba.start, ba.stop), slice(bb.start, bb.stop)
        m.mean_x, m.mean_y = self.mean[sa], self.mean[sb]
        m.cxx = self.comoment[sa, sa]
        m.cyy = self.comoment[sb, sb]
        m.cxy = self.comoment[sa, sb]
        m.min_x, m.max_x = self.minimum[sa], self.maximum[sa]
        m.min_y, m.max_y = self.minimum[sb], self.maximum[sb]
        m._cache_x = self._side_cache.setdefault(a, {})
        m._cache_y = self._side_cache.setdefault(b, {})
        m.names = (a, b)
        return m

    def covariance(self, name: str, *, ddof: int = 1) -> Array:
        """The (d, d) sample covariance of one layer."""
        b = self.block(name)
        s = slice(b.start, b.stop)
        return self.comoment[s, s] / (self.n - ddof)


class Moments:
    """Mergeable means and centred second moments of a pair of activation matrices (X, Y).

    The sufficient statistics of every linear similarity measure: pass a ``Moments``
    instead of arrays to :func:`nncompare.cca`, :func:`~nncompare.svcca`,
    :func:`~nncompare.pwcca`, :func:`~nncompare.cca_r2`, :func:`~nncompare.cka`,
    :func:`~nncompare.lr_r2`, :func:`~nncompare.procrustes` or :func:`~nncompare.shape`
    and the result equals the in-memory one (to rounding).

    Attributes
    ----------
    n : int
        Samples seen.
    mean_x, mean_y : array, shape (d1,), (d2,)
    cxx, cyy, cxy : array, shapes (d1, d1), (d2, d2), (d1, d2)
        Centred sums of products, e.g. ``cxy = (X - mean_x).T @ (Y - mean_y)``.
    min_x, max_x, min_y, max_y : array
        Per-feature extremes (to detect exactly constant features).

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 6))
    >>> stats = nc.Moments()
    >>> for s in range(0, 1000, 128):
    ...     _ = stats.update(X[s:s + 128], Y[s:s + 128])
    >>> abs(float(nc.pwcca(stats)) - float(nc.pwcca(X, Y))) < 1e-12
    True
    """

    def __init__(self, *, dtype: str = "float64") -> None:
        self._joint = JointMoments(dtype=dtype)
        self.dtype_name = dtype
        self.n = 0
        self._xp: Any = None
        self.mean_x = self.mean_y = None
        self.cxx = self.cyy = self.cxy = None
        self.min_x = self.max_x = self.min_y = self.max_y = None
        self._cache_x: dict[Any, Any] = {}
        self._cache_y: dict[Any, Any] = {}
        self.names: tuple[str, str] = ("X", "Y")

    @classmethod
    def from_arrays(
        cls, X: Any, Y: Any, *, dtype: str = "float64", validated: bool = False
    ) -> Moments:
        """Moments of complete (n, d1) and (n, d2) arrays in one product."""
        return cls(dtype=dtype).update(X, Y, validated=validated)

    @property
    def xp(self) -> Any:
        if self._xp is None:
            raise ValueError("This Moments is empty: call update(X_batch, Y_batch) first.")
        return self._xp

    @property
    def d1(self) -> int:
        return int(self.cxx.shape[0])

    @property
    def d2(self) -> int:
        return int(self.cyy.shape[0])

    def __repr__(self) -> str:
        if self.n == 0:
            return f"Moments(n=0, dtype={self.dtype_name})"
        return f"Moments(n={self.n}, d1={self.d1}, d2={self.d2}, dtype={self.dtype_name})"

    def _sync(self) -> None:
        j = self._joint
        view = j.pair("X", "Y")
        for attr in (
            "n",
            "_xp",
            "mean_x",
            "mean_y",
            "cxx",
            "cyy",
            "cxy",
            "min_x",
            "max_x",
            "min_y",
            "max_y",
        ):
            setattr(self, attr, getattr(view, attr))
        self._cache_x, self._cache_y = {}, {}

    def update(self, X: Any, Y: Any, *, validated: bool = False) -> Moments:
        """Add a batch of paired activations, X (b, d1) and Y (b, d2) over the same b samples."""
        X = as_array(X, name="X")
        Y = as_array(Y, name="Y")
        X, Y = harmonize(X, Y)
        for nm, a in (("X", X), ("Y", Y)):
            if a.ndim != 2:
                raise ValueError(
                    f"{nm} must be 2-D (batch_size, n_features); got shape {tuple(a.shape)}. "
                    "Reshape convolutional activations first (nc.reshape_conv)."
                )
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                "X and Y batches must hold the same samples; got "
                f"{X.shape[0]} and {Y.shape[0]} rows."
            )
        self._joint.update({"X": X, "Y": Y}, validated=validated)
        self._sync()
        return self

    def merge(self, other: Moments) -> Moments:
        """Fold another ``Moments`` of the same layers (other samples) into this one."""
        if not isinstance(other, Moments):
            raise TypeError(f"merge() expects a Moments; got {type(other).__name__}.")
        if other._joint.n == 0 and other.n > 0:
            other = _moments_to_joint(other)
        if self._joint.n == 0 and self.n > 0:  # a view (e.g. JointMoments.pair): rebuild it
            self._joint = _moments_to_joint(self)._joint
        self._joint.merge(other._joint)
        self._sync()
        return self

    def swapped(self) -> Moments:
        """The same statistics with the roles of X and Y exchanged."""
        m = Moments(dtype=self.dtype_name)
        m.n, m._xp = self.n, self._xp
        m.mean_x, m.mean_y = self.mean_y, self.mean_x
        m.cxx, m.cyy = self.cyy, self.cxx
        m.cxy = None if self.cxy is None else self._xp.matrix_transpose(self.cxy)
        m.min_x, m.max_x, m.min_y, m.max_y = self.min_y, self.max_y, self.min_x, self.max_x
        m._cache_x, m._cache_y = self._cache_y, self._cache_x
        m.names = (self.names[1], self.names[0])
        return m

    def constant_x(self) -> Array:
        return self.min_x == self.max_x

    def constant_y(self) -> Array:
        return self.min_y == self.max_y


def _moments_to_joint(m: Moments) -> Moments:
    """Rebuild the joint accumulator behind a Moments view (e.g. one from JointMoments.pair)."""
    xp = m.xp
    out = Moments(dtype=m.dtype_name)
    j = out._joint
    d1, d2 = m.d1, m.d2
    j._init_layout({"X": _Shape(d1), "Y": _Shape(d2)})
    top = xp.concat([m.cxx, m.cxy], axis=1)
    bottom = xp.concat([xp.matrix_transpose(m.cxy), m.cyy], axis=1)
    j._merge_raw(
        xp,
        m.n,
        xp.concat([m.mean_x, m.mean_y]),
        xp.concat([top, bottom], axis=0),
        xp.concat([m.min_x, m.min_y]),
        xp.concat([m.max_x, m.max_y]),
    )
    out._sync()
    return out


class _Shape:
    def __init__(self, d: int) -> None:
        self.shape = (0, d)


def _batch_moments(xp: Any, arrays: Sequence[Array], dt: Any) -> tuple[Array, Array, Array, Array]:
    """Mean, centred co-moment, min and max of the column-concatenated batch."""
    if all(isinstance(a, np.ndarray) for a in arrays):
        return _batch_moments_numpy(arrays, dt)
    parts, means, los, his = [], [], [], []
    for a in arrays:
        a = xp.astype(a, dt) if a.dtype != dt else a
        mu = xp.mean(a, axis=0)
        parts.append(a - mu)
        means.append(mu)
        los.append(xp.min(a, axis=0))
        his.append(xp.max(a, axis=0))
    Z = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
    com = xp.matrix_transpose(Z) @ Z
    return xp.concat(means), com, xp.concat(los), xp.concat(his)


_CHUNK_BYTES = 32 * 2**20


_CANCELLATION_LIMIT = 1e4


def _raw_product_moments(arrays: Sequence[np.ndarray]) -> tuple[Any, Any] | None:
    """Centred co-moments from products of the raw float64 arrays, corrected by the means.

    C = Zᵀ Z − n μ μᵀ needs no centred copy (the BLAS products read the inputs in place), but
    it cancels digits when a feature's mean is large against its spread: the relative error
    is about eps · n μ² / C_jj. Returns None (use the centred path) when that ratio exceeds
    ``_CANCELLATION_LIMIT`` for any feature (or a feature is constant).
    """
    nb = arrays[0].shape[0]
    means = [a.mean(axis=0) for a in arrays]
    dims = [a.shape[1] for a in arrays]
    offs = np.cumsum([0, *dims])
    D = int(offs[-1])
    com = np.empty((D, D))
    for i, a in enumerate(arrays):
        for j in range(i, len(arrays)):
            b = arrays[j]
            block = a.T @ a if j == i else a.T @ b
            block -= nb * np.outer(means[i], means[j])
            com[offs[i] : offs[i + 1], offs[j] : offs[j + 1]] = block
            if j != i:
                com[offs[j] : offs[j + 1], offs[i] : offs[i + 1]] = block.T
    mu = np.concatenate(means)
    diag = np.diagonal(com)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = nb * mu * mu / diag
    if not np.all(diag > 0) or not np.all(ratio < _CANCELLATION_LIMIT):
        return None
    return mu, com


def _batch_moments_numpy(
    arrays: Sequence[np.ndarray],
    dt: Any,
    *,
    row_norms: list[np.ndarray] | None = None,
    extrema: bool = True,
) -> tuple[Any, Any, Any, Any]:
    """numpy fast path: one pass for the means, then centre block by block into a reused
    buffer and accumulate the symmetric product ``Zᵀ Z`` (BLAS syrk: half the flops of a
    general product), taking the per-feature extremes of each block while it is in cache.

    No copy of the whole batch is made; the result equals the one-shot product to rounding.
    With ``row_norms`` (an empty list), the squared norms of every centred row of every
    array are appended to it (one (n,) vector per array).
    """
    if (
        row_norms is None
        and dt == np.float64
        and len(arrays) <= 3
        and all(a.dtype == np.float64 for a in arrays)
    ):
        fast = _raw_product_moments(arrays)
        if fast is not None:
            mu, com = fast
            if extrema:
                lo = np.concatenate([a.min(axis=0) for a in arrays])
                hi = np.concatenate([a.max(axis=0) for a in arrays])
            else:
                lo = hi = None
            return mu, com, lo, hi
    nb = arrays[0].shape[0]
    dims = [a.shape[1] for a in arrays]
    D = sum(dims)
    means = [a.mean(axis=0, dtype=dt) for a in arrays]
    rows = int(max(64, min(nb, _CHUNK_BYTES // (8 * D))))
    buf = np.empty((rows, D), dtype=dt)
    com = np.zeros((D, D), dtype=dt)
    lo = np.full(D, np.inf, dtype=dt)
    hi = np.full(D, -np.inf, dtype=dt)
    base = len(row_norms) if row_norms is not None else 0
    if row_norms is not None:
        row_norms.extend(np.empty(nb, dtype=dt) for _ in arrays)
    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        Z = buf[: s1 - s0]
        start = 0
        for idx, (a, mu, d) in enumerate(zip(arrays, means, dims, strict=True)):
            block = a[s0:s1]
            np.subtract(block, mu, out=Z[:, start : start + d], dtype=dt)
            if extrema:
                np.minimum(lo[start : start + d], block.min(axis=0), out=lo[start : start + d])
                np.maximum(hi[start : start + d], block.max(axis=0), out=hi[start : start + d])
            if row_norms is not None:
                zc = Z[:, start : start + d]
                np.einsum("ij,ij->i", zc, zc, out=row_norms[base + idx][s0:s1])
            start += d
        if s0 == 0 and s1 == nb:
            com = Z.T @ Z
        else:
            com += Z.T @ Z
    if not extrema:
        lo = hi = None
    return np.concatenate(means), com, lo, hi


# ---------------------------------------------------------------------- minibatch CKA
class MinibatchCKA:
    """Kernel CKA accumulated over minibatches with the unbiased HSIC estimator.

    For each minibatch b of m samples, the unbiased estimator HSIC₁ of Song et al.
    (2012) is computed for the pairs (K, L), (K, K) and (L, L); CKA is

    .. math:: \\mathrm{CKA}_{mb} = \\frac{\\sum_b \\mathrm{HSIC}_1(K_b, L_b)}
              {\\sqrt{\\sum_b \\mathrm{HSIC}_1(K_b, K_b)\\,\\sum_b \\mathrm{HSIC}_1(L_b, L_b)}}

    (Nguyen, Raghu & Kornblith 2021, eq. 3). Memory is O(m²) per batch and O(1) across
    batches. With one batch holding all samples and a linear kernel, this is the debiased
    linear CKA of Kornblith et al. (2019).

    Parameters
    ----------
    kernel : {"linear", "rbf"}
        Gram matrices; "rbf" uses exp(-‖x-y‖² / (2 σ²)) with σ² = threshold² · median of the
        squared distances *within each batch* (Kornblith's bandwidth convention, per batch).
    threshold : float
        RBF bandwidth as a fraction of the median distance.
    """

    def __init__(self, kernel: str = "linear", *, threshold: float = 1.0) -> None:
        check_option("kernel", kernel, ("linear", "rbf"))
        self.kernel = kernel
        self.threshold = float(threshold)
        self.hsic_xy = 0.0
        self.hsic_xx = 0.0
        self.hsic_yy = 0.0
        self.n_batches = 0
        self.n = 0
        self._xp: Any = None

    def update(self, X: Any, Y: Any) -> MinibatchCKA:
        from nncompare._validation import check_pair
        from nncompare.measures._kernels import gram, hsic_unbiased

        X, Y = check_pair(X, Y, min_samples=4)
        xp = namespace(X, Y)
        dt = xp.float64
        X, Y = xp.astype(X, dt), xp.astype(Y, dt)
        K = gram(xp, X, self.kernel, self.threshold)
        L = gram(xp, Y, self.kernel, self.threshold)
        hxy = hsic_unbiased(xp, K, L)
        hxx = hsic_unbiased(xp, K, K)
        hyy = hsic_unbiased(xp, L, L)
        if self.n_batches == 0:
            self.hsic_xy, self.hsic_xx, self.hsic_yy = hxy, hxx, hyy
        else:
            self.hsic_xy = self.hsic_xy + hxy
            self.hsic_xx = self.hsic_xx + hxx
            self.hsic_yy = self.hsic_yy + hyy
        self._xp = xp
        self.n_batches += 1
        self.n += int(X.shape[0])
        return self

    def merge(self, other: MinibatchCKA) -> MinibatchCKA:
        if not isinstance(other, MinibatchCKA):
            raise TypeError(f"merge() expects a MinibatchCKA; got {type(other).__name__}.")
        if (other.kernel, other.threshold) != (self.kernel, self.threshold):
            raise ValueError("cannot merge MinibatchCKA accumulators with different kernels.")
        if other.n_batches == 0:
            return self
        if self.n_batches == 0:
            self.hsic_xy, self.hsic_xx, self.hsic_yy = other.hsic_xy, other.hsic_xx, other.hsic_yy
            self._xp = other._xp
        else:
            self.hsic_xy = self.hsic_xy + other.hsic_xy
            self.hsic_xx = self.hsic_xx + other.hsic_xx
            self.hsic_yy = self.hsic_yy + other.hsic_yy
        self.n_batches += other.n_batches
        self.n += other.n
        return self

    def compute(self) -> Any:
        """The minibatch CKA as a :class:`~nncompare.results.CKAResult`."""
        from nncompare.results import CKAResult

        if self.n_batches == 0:
            raise ValueError("MinibatchCKA is empty: call update(X_batch, Y_batch) first.")
        xp = self._xp
        denom = (
            xp.sqrt(self.hsic_xx * self.hsic_yy)
            if is_torch(self.hsic_xx)
            else float(np.sqrt(float(self.hsic_xx) * float(self.hsic_yy)))
        )
        if float(self.hsic_xx) <= 0 or float(self.hsic_yy) <= 0:
            raise ValueError(
                "minibatch CKA is undefined: the summed unbiased HSIC of a representation with "
                f"itself is not positive (HSIC(K,K)={float(self.hsic_xx):.3g}, "
                f"HSIC(L,L)={float(self.hsic_yy):.3g}). Use larger batches or check for "
                "constant activations."
            )
        value = self.hsic_xy / denom
        return CKAResult(
            measure="cka_minibatch",
            value=value,
            n_samples=self.n,
            conventions={
                "kernel": self.kernel,
                "threshold": self.threshold if self.kernel == "rbf" else None,
                "estimator": "unbiased HSIC_1 (Song et al. 2012) summed over "
                f"{self.n_batches} minibatches (Nguyen et al. 2021)",
            },
            hsic_xy=self.hsic_xy,
            hsic_xx=self.hsic_xx,
            hsic_yy=self.hsic_yy,
        )


def iter_pairs(names_a: Iterable[str], names_b: Iterable[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in names_a for b in names_b]


# ---------------------------------------------------------------------- spectral moments
class SpectralMoments:
    """Joint per-frequency moments of convolutional activations, for the exact DFT path.

    Each batch of channels-last activations (b, *spatial, c) is transformed by a unitary
    DFT over the spatial axes and cropped to the common frequency grid ``spatial`` (the
    frequencies -h/2 ≤ f < h/2 of each axis, see :func:`nncompare.measures.conv.dft_cca`);
    the accumulator keeps, for every kept frequency f, the complex means and centred
    co-moments of all layers jointly: ``comoment[f] = Σ_s (z_sf - z̄_f)ᴴ (z_sf - z̄_f)``,
    shape (F, D, D). Memory is O(F·D²), independent of the number of samples; merging is
    exact (Chan et al. 1979, with conjugates). Vector layers (b, d) count as spatial size 1,
    whose only frequency (0) is the spatial mean.

    Parameters
    ----------
    spatial : tuple of int
        The common frequency grid; every layer must be at least this large on each axis.
    """

    def __init__(self, spatial: tuple[int, ...]) -> None:
        self.spatial = tuple(int(s) for s in spatial)
        self.n = 0
        self.blocks: dict[str, _Block] = {}
        self.mean: Array | None = None
        self.comoment: Array | None = None
        self._xp: Any = None

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    def __repr__(self) -> str:
        return f"SpectralMoments(n={self.n}, spatial={self.spatial}, blocks={list(self.blocks)})"

    def _spectrum(self, xp: Any, name: str, a: Array) -> Array:
        from nncompare.measures.conv import _spectra

        nsp = len(self.spatial)
        if a.ndim == 2:
            a = xp.reshape(a, (a.shape[0], *([1] * nsp), a.shape[1]))
        if a.ndim != nsp + 2:
            raise ValueError(
                f"layer {name!r}: expected channels-last activations with {nsp} spatial axes "
                f"(b, {', '.join('s' for _ in range(nsp))}, c) or vectors (b, d); got shape "
                f"{tuple(a.shape)}."
            )
        size = tuple(int(s) for s in a.shape[1:-1])
        if any(s < t for s, t in zip(size, self.spatial, strict=True)):
            raise ValueError(
                f"layer {name!r} has spatial size {size}, smaller than the frequency grid "
                f"{self.spatial} of this accumulator."
            )
        F = _spectra(xp, a, self.spatial, xp.complex128)  # (*spatial, b, c)
        return xp.reshape(F, (-1, F.shape[-2], F.shape[-1]))

    def update(self, batches: Mapping[str, Any]) -> SpectralMoments:
        """Add a batch: ``name -> (b, *spatial, c)`` channels-last activations (or (b, d))."""
        if not isinstance(batches, Mapping) or not batches:
            raise TypeError("update() expects a non-empty mapping {layer_name: activations}.")
        arrays = {str(k): as_array(v, name=str(k)) for k, v in batches.items()}
        names = list(arrays)
        first = arrays[names[0]]
        for k in names[1:]:
            _, arrays[k] = harmonize(first, arrays[k])
        sizes = {k: int(a.shape[0]) for k, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all batches must hold the same samples; got batch sizes {sizes}.")
        for k, a in arrays.items():
            check_finite(a, name=f"batch {k!r}")
        xp = namespace(*arrays.values())
        specs = [self._spectrum(xp, k, arrays[k]) for k in names]
        if self.blocks:
            if names != list(self.blocks) or any(
                s.shape[-1] != self.blocks[k].dim for k, s in zip(names, specs, strict=True)
            ):
                raise ValueError("batch layout differs from earlier batches.")
        else:
            start = 0
            for k, s in zip(names, specs, strict=True):
                self.blocks[k] = _Block(k, start, start + int(s.shape[-1]))
                start += int(s.shape[-1])
        Z = xp.concat(specs, axis=-1)  # (F, b, D)
        nb = int(Z.shape[-2])
        mu = xp.mean(Z, axis=-2)
        Zc = Z - mu[:, None, :]
        com = xp.conj(xp.matrix_transpose(Zc)) @ Zc
        if self.n == 0:
            self._xp, self.n, self.mean, self.comoment = xp, nb, mu, com
            return self
        na, n = self.n, self.n + nb
        delta = mu - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.comoment = (
            self.comoment + com + (na * nb / n) * (xp.conj(delta)[:, :, None] * delta[:, None, :])
        )
        self.n = n
        return self

    def pair(self, a: str, b: str) -> tuple[Array, Array, Array]:
        """Per-frequency (Cxx, Cyy, Cxy) of layers ``a`` and ``b``, each (F, d, d')."""
        for k in (a, b):
            if k not in self.blocks:
                raise KeyError(f"no layer {k!r} in this accumulator; it holds {self.names}.")
        ba, bb = self.blocks[a], self.blocks[b]
        sa, sb = slice(ba.start, ba.stop), slice(bb.start, bb.stop)
        C = self.comoment
        return C[:, sa, sa], C[:, sb, sb], C[:, sa, sb]
