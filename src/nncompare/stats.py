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

:class:`nncompare.MinibatchCKA`, the minibatch accumulator of kernel CKA (Nguyen, Raghu &
Kornblith 2021), lives beside the measure it serves, in :mod:`nncompare.measures.cka`.

References
----------
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979). Updating formulae and a pairwise
algorithm for computing sample variances. Stanford CS report STAN-CS-79-773.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from nncompare._array import (
    Array,
    as_array,
    device_of,
    harmonize,
    is_torch,
    namespace,
    to_numpy,
)
from nncompare._scratch import scratch
from nncompare._threads import (
    blas_single_threaded,
    block_map,
    row_slices,
    thread_map,
    worker_count,
)
from nncompare._validation import check_finite, check_option, constant_mask, dtype_eps

__all__ = ["JointMoments", "Moments"]

_T = TypeVar("_T")


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
    the accumulator keeps, always in float64:

    * ``n``: the number of samples seen;
    * ``mean``: the feature means, shape (D,), D the total number of features;
    * ``scale``: a power of two per feature, about the size of its deviations from the mean;
    * ``zcom``: the centred sums of products of the *rescaled* features,
      :math:`Z = \\sum_s \\frac{(z_s - \\bar z)}{\\text{scale}} \\frac{(z_s - \\bar z)^T}
      {\\text{scale}^T}`, shape (D, D) — every entry is at most ``n`` in magnitude;
    * ``comoment``: the centred sums of products in the data's units,
      ``scale[:, None] * zcom * scale[None, :]`` (formed on request; it over- or underflows
      for data near the limits of float64, which the measures never need);
    * ``minimum`` / ``maximum``: per-feature extremes, from which constant features are
      found (:func:`nncompare._validation.constant_mask`).

    Memory is O(D²), independent of the number of samples. ``update`` costs one
    symmetric product of the (batch, D) centred batch, in row chunks (no copy of the whole
    batch); ``merge`` combines two accumulators exactly (Chan et al. 1979).

    Scale handling: each batch is centred, then divided by its per-feature power-of-two
    scale before any product is formed, and merged sums are rescaled (exactly: the scales
    are powers of two) when a later batch is larger — the running scaled sum of squares of
    LAPACK's ``dlassq``. Any finite input therefore accumulates without overflow or
    underflow, from 1e-300 to 1e300 and with per-feature scales that differ as much.

    Parameters
    ----------
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the per-batch products (the O(batch · D²) work). ``"auto"``: the
        inputs' own precision — float32 products when every batch is a float of at most 32
        bits (float32, float16, bfloat16), float64 otherwise. ``"float64"``: the exact path
        for any input. Means, merging and the accumulated sums are float64 either way, the
        products are formed in row blocks and summed in float64, and every batch is centred
        *before* its product (float32 data against its float32-rounded mean, with the
        residual corrected exactly in float64; other data in float64), so large offsets
        cost no precision. Float32 products carry the rounding of float32 sums: about 1e-7
        relative in every co-moment, up to a few 1e-6 for coarsely quantised float32 data
        (large offsets); the measures agree with the float64 path to 1e-9 .. 1e-8 on the
        benchmark pair (10000 × 512) and on ResNet activations, to 1e-6 .. 1e-5 at worst.
        Measures that invert a covariance (the CCA family, lr_r2, shape with alpha < 1)
        check that the inversion does not amplify that rounding beyond 1e-3
        (:data:`nncompare.measures._linalg.FLOAT32_AMPLIFICATION_LIMIT`) and otherwise
        raise :class:`~nncompare.measures._linalg.ProductPrecisionError`, asking for
        ``"float64"`` (given arrays, they recompute in float64 themselves).
        ``product_precision`` records what was used.
    dtype : {"float64", "float32"}, optional
        Former name of ``precision`` (same meaning), kept for compatibility.

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

    def __init__(self, *, precision: str = "auto", dtype: str | None = None) -> None:
        self.precision = check_precision(precision, dtype)
        self.product_precision: str | None = None  # "float32" once any product was float32
        self.n = 0
        self.blocks: dict[str, _Block] = {}
        self._ref: np.ndarray | None = None
        self._mh: Array | None = None
        self.zcom: Array | None = None
        self._scale: np.ndarray | None = None
        self._lo: np.ndarray | None = None
        self._hi: np.ndarray | None = None
        self._eps: np.ndarray | None = None
        self._xp: Any = None
        self._side_cache: dict[Any, Any] = {}
        self._snap: _Snapshot | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the namespace travels by name (modules do not pickle); the per-layer
        # decompositions are a cache, recomputed where the copy is used
        return {**self.__dict__, "_xp": _xp_name(self._xp), "_side_cache": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _xp=_xp_from_name(state.get("_xp")))

    # ------------------------------------------------------------------ basics
    @property
    def dtype_name(self) -> str:
        """Former name of ``precision``."""
        return self.precision

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

    @property
    def mean(self) -> Array | None:
        """Feature means (float64): a fixed reference (the first batch's mean) plus the
        accumulated offset from it, which keeps the merging of offset data exact."""
        return None if self._mh is None else _mean_of(self._xp, self._ref, self._mh)

    @property
    def scale(self) -> Array | None:
        """Per-feature powers of two: ``zcom`` holds the co-moments of (x - mean) / scale."""
        return None if self._scale is None else self._snapshot().scale_dev

    @property
    def comoment(self) -> Array | None:
        """Centred sums of products in the data's units (may over/underflow at extreme scales)."""
        if self.zcom is None:
            return None
        s = self._snapshot().scale_dev
        return s[:, None] * self.zcom * s[None, :]

    @property
    def minimum(self) -> Array | None:
        return None if self._lo is None else self._device_array(self._lo)

    @property
    def maximum(self) -> Array | None:
        return None if self._hi is None else self._device_array(self._hi)

    def constant(self) -> np.ndarray:
        """Boolean (D,) mask of the constant features (the rule of ``constant_mask``)."""
        return self._snapshot().const

    def _device_array(self, a: np.ndarray) -> Array:
        return self._xp.asarray(a, device=device_of(self._mh))

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}: {b.dim}" for k, b in self.blocks.items())
        return f"{type(self).__name__}(n={self.n}, blocks={{{dims}}}, precision={self.precision})"

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
        A batch of zero samples is a no-op (its layout is still checked against earlier ones).
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
        nb = int(first.shape[0])
        if nb == 0:
            return self
        xp = namespace(*arrays.values())
        if self._xp is not None and xp is not self._xp:
            raise TypeError(
                "batches must come from one array library; this accumulator holds "
                f"{self._xp.__name__} arrays but got {xp.__name__}."
            )
        dt = product_dtype(xp, arrays.values(), self.precision)
        # non-finite values show in the first pass's extremes (NaN propagates through min
        # and max): the arrays are checked (and the offender named) only then
        check = None if validated else [f"batch {k!r}" for k in names]
        batch = _batch_stats(xp, [arrays[k] for k in names], dt, ref=self._ref, check=check)
        batch.product_precision = "float64" if dt == xp.float64 else "float32"
        if not self.blocks:
            self._init_layout(arrays)
        self._merge_batch(xp, batch)
        return self

    def _merge_batch(self, xp: Any, b: _BatchStats) -> None:
        self._side_cache.clear()
        self._snap = None
        if b.product_precision == "float32" or self.product_precision == "float32":
            self.product_precision = "float32"
        else:
            self.product_precision = b.product_precision
        if self.n == 0:
            self._xp = xp
            self.n, self._ref, self._mh, self.zcom = b.n, b.ref, b.mh, b.zcom
            self._scale, self._lo, self._hi, self._eps = b.scale, b.lo, b.hi, b.eps
            return
        na, nb = self.n, b.n
        n = na + nb
        dev = device_of(self._mh)
        mh_b = b.mh
        if b.ref is not self._ref and not np.array_equal(b.ref, self._ref):
            mh_b = mh_b + xp.asarray(b.ref * 0.5 - self._ref * 0.5, device=dev)
        dh = mh_b - self._mh  # half the difference of the means, accurate for offset data
        new = np.maximum(np.maximum(self._scale, b.scale), 2.0 * _pow2_ceil(np.abs(to_numpy(dh))))
        za = _rescale_sym(xp, self.zcom, self._scale / new, dev)
        zb = _rescale_sym(xp, b.zcom, b.scale / new, dev)
        dz = dh * xp.asarray(2.0 / new, device=dev)
        self.zcom = za + zb + (na * nb / n) * (dz[:, None] * dz[None, :])
        # a convex combination: finite for any finite means
        self._mh = self._mh * (na / n) + mh_b * (nb / n)
        self._scale = new
        self._lo = np.minimum(self._lo, b.lo)
        self._hi = np.maximum(self._hi, b.hi)
        self._eps = np.maximum(self._eps, b.eps)
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
        if self._xp is not None and other._xp is not self._xp:
            raise TypeError(
                "cannot merge accumulators of different array libraries: "
                f"{self._xp.__name__} and {other._xp.__name__}."
            )
        if not self.blocks:
            self.blocks = dict(other.blocks)
        self._merge_batch(other._xp, other._as_batch())
        return self

    def _as_batch(self) -> _BatchStats:
        return _BatchStats(
            n=self.n,
            ref=self._ref,
            mh=self._mh,
            zcom=self.zcom,
            scale=self._scale,
            lo=self._lo,
            hi=self._hi,
            eps=self._eps,
            product_precision=self.product_precision,
        )

    # ------------------------------------------------------------------ views
    def _snapshot(self) -> _Snapshot:
        """The current statistics with constant features' rows and columns zeroed (cached)."""
        if self._snap is None:
            if self.n == 0:
                raise ValueError("This accumulator is empty: call update() with a batch first.")
            xp = self._xp
            dev = device_of(self._mh)
            const = constant_mask(self._lo, self._hi, self._eps)
            zcom = self.zcom
            if const.any():
                keep = xp.asarray((~const).astype(np.float64), device=dev)
                zcom = keep[:, None] * zcom * keep[None, :]
            self._snap = _Snapshot(
                xp=xp,
                n=self.n,
                mean=self.mean,
                ref=self._ref,
                mh=self._mh,
                zcom=zcom,
                zcom_raw=self.zcom,
                scale=self._scale,
                scale_dev=xp.asarray(self._scale, device=dev),
                lo=self._lo,
                hi=self._hi,
                eps=self._eps,
                const=const,
                product_precision=self.product_precision or "float64",
            )
        return self._snap

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
        grid of pairs decomposes each layer's covariance once. The view is a snapshot: later
        updates of this accumulator do not change it.
        """
        ba, bb = self.block(a), self.block(b)
        m = Moments(precision=self.precision)
        m._snap = self._snapshot()
        m._sx, m._sy = slice(ba.start, ba.stop), slice(bb.start, bb.stop)
        m._cache_x = self._side_cache.setdefault(a, {})
        m._cache_y = self._side_cache.setdefault(b, {})
        m.names = (a, b)
        return m

    def covariance(self, name: str, *, ddof: int = 1) -> Array:
        """The (d, d) sample covariance of one layer (in the data's units)."""
        b = self.block(name)
        s = slice(b.start, b.stop)
        return self.comoment[s, s] / (self.n - ddof)


def _xp_name(xp: Any) -> str | None:
    """The module name of an array namespace (``None`` stays ``None``), for pickling."""
    return None if xp is None else str(xp.__name__)


def _xp_from_name(name: Any) -> Any:
    """The array namespace named by :func:`_xp_name` (a module passes through)."""
    if name is None or not isinstance(name, str):
        return name
    import importlib

    return importlib.import_module(name)


@dataclass(frozen=True)
class _Snapshot:
    xp: Any
    n: int
    mean: Array
    ref: np.ndarray
    mh: Array
    zcom: Array  # constant features' rows and columns zeroed
    zcom_raw: Array
    scale: np.ndarray
    scale_dev: Array
    lo: np.ndarray
    hi: np.ndarray
    eps: np.ndarray
    const: np.ndarray
    product_precision: str = "float64"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "xp": _xp_name(self.xp)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, xp=_xp_from_name(state.get("xp")))


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
        Centred sums of products, e.g. ``cxy = (X - mean_x).T @ (Y - mean_y)``, in the data's
        units (formed on request from the rescaled sums; see :class:`JointMoments`).
    zxx, zyy, zxy : array
        The same for the rescaled features (x - mean_x) / scale_x, with the rows and columns
        of constant features set to zero; what the measures use.
    scale_x, scale_y : array, shape (d1,), (d2,)
        Per-feature powers of two.
    min_x, max_x, min_y, max_y : array
        Per-feature extremes (to detect constant features).
    product_precision : {"float32", "float64"} or None
        Precision the products were formed in ("float32" once any batch used float32).

    Parameters
    ----------
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the per-batch products; see :class:`JointMoments`. ``"auto"`` forms
        them in the batches' own precision (float32 for float32 batches), ``"float64"`` is
        the exact path.
    dtype : {"float64", "float32"}, optional
        Former name of ``precision``.

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

    def __init__(self, *, precision: str = "auto", dtype: str | None = None) -> None:
        self.precision = check_precision(precision, dtype)
        self._joint = JointMoments(precision=self.precision)
        self._snap: _Snapshot | None = None
        self._sx = self._sy = slice(0, 0)
        self._cache_x: dict[Any, Any] = {}
        self._cache_y: dict[Any, Any] = {}
        self._cache_pair: dict[Any, Any] = {}
        self.names: tuple[str, str] = ("X", "Y")

    @classmethod
    def from_arrays(
        cls,
        X: Any,
        Y: Any,
        *,
        precision: str = "auto",
        dtype: str | None = None,
        validated: bool = False,
    ) -> Moments:
        """Moments of complete (n, d1) and (n, d2) arrays in one (chunked) product."""
        return cls(precision=precision, dtype=dtype).update(X, Y, validated=validated)

    # ------------------------------------------------------------------ state
    @property
    def n(self) -> int:
        return 0 if self._snap is None else self._snap.n

    @property
    def dtype_name(self) -> str:
        """Former name of ``precision``."""
        return self.precision

    @property
    def product_precision(self) -> str | None:
        """``"float32"`` once any product was formed in float32, else ``"float64"``."""
        return None if self._snap is None else self._snap.product_precision

    @property
    def _xp(self) -> Any:
        return None if self._snap is None else self._snap.xp

    @property
    def xp(self) -> Any:
        if self._snap is None:
            raise ValueError("This Moments is empty: call update(X_batch, Y_batch) first.")
        return self._snap.xp

    def _get(self, name: str) -> Any:
        s = self._snap
        if s is None:
            return None
        sx, sy = self._sx, self._sy
        xp = s.xp
        if name == "mean_x":
            return s.mean[sx]
        if name == "mean_y":
            return s.mean[sy]
        if name in ("zxx", "zyy", "zxy"):
            a = sx if name[1] == "x" else sy
            b = sx if name[2] == "x" else sy
            return s.zcom[a, b]
        if name in ("cxx", "cyy", "cxy"):
            a = sx if name[1] == "x" else sy
            b = sx if name[2] == "x" else sy
            return s.scale_dev[a][:, None] * s.zcom_raw[a, b] * s.scale_dev[b][None, :]
        if name in ("scale_x", "scale_y"):
            return s.scale_dev[sx if name[-1] == "x" else sy]
        side = sx if name.endswith("_x") else sy
        src = s.lo if name.startswith("min") else s.hi
        return xp.asarray(src[side], device=device_of(s.mean))

    mean_x = property(lambda self: self._get("mean_x"))
    mean_y = property(lambda self: self._get("mean_y"))
    cxx = property(lambda self: self._get("cxx"))
    cyy = property(lambda self: self._get("cyy"))
    cxy = property(lambda self: self._get("cxy"))
    zxx = property(lambda self: self._get("zxx"))
    zyy = property(lambda self: self._get("zyy"))
    zxy = property(lambda self: self._get("zxy"))
    scale_x = property(lambda self: self._get("scale_x"))
    scale_y = property(lambda self: self._get("scale_y"))
    min_x = property(lambda self: self._get("min_x"))
    max_x = property(lambda self: self._get("max_x"))
    min_y = property(lambda self: self._get("min_y"))
    max_y = property(lambda self: self._get("max_y"))

    @property
    def d1(self) -> int:
        return self._sx.stop - self._sx.start

    @property
    def d2(self) -> int:
        return self._sy.stop - self._sy.start

    def __repr__(self) -> str:
        if self.n == 0:
            return f"Moments(n=0, precision={self.precision})"
        return (
            f"Moments(n={self.n}, d1={self.d1}, d2={self.d2}, precision={self.precision}, "
            f"products in {self.product_precision})"
        )

    def constant_x(self) -> Array:
        """Boolean (d1,) mask of the constant features of X (see ``constant_mask``)."""
        return self._const(self._sx)

    def constant_y(self) -> Array:
        return self._const(self._sy)

    def _const(self, side: slice) -> Array:
        s = self._snap
        return s.xp.asarray(s.const[side], device=device_of(s.mean))

    def cached(self, which: str, key: Hashable, compute: Callable[[], _T]) -> _T:
        """A per-side preparation of X (``which="x"``) or Y (``"y"``), computed once.

        Returns the value stored under ``key`` for that side, calling ``compute()`` to make
        it on first use. The measures keep their decompositions of one side here (e.g. the
        CCA whitening of X): the cache belongs to the layer, not to the pair, so the views of
        one :class:`JointMoments` (:meth:`JointMoments.pair`) and :meth:`swapped` share it,
        and a grid of pairs decomposes each layer once. It is emptied when the moments
        change (``update``, ``merge``). ``key`` must name everything the value depends on
        besides this side's moments (e.g. ``("whiten", rtol)``).

        Parameters
        ----------
        which : {"x", "y"}
            The side.
        key : hashable
            What the value is (the measure's preparation and its options).
        compute : callable
            ``compute()`` returns the value; called only when it is not cached yet.

        Returns
        -------
        object
            The cached or newly computed value.
        """
        check_option("which", which, ("x", "y"))
        cache = self._cache_x if which == "x" else self._cache_y
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def relative_scale(self, which: str) -> tuple[Array, float]:
        """(scale / g, g) for side ``"x"`` or ``"y"``: g is the largest scale of a non-constant
        feature, so the ratios are powers of two <= 1 (exact)."""
        cache = self._cache_x if which == "x" else self._cache_y
        if "relative_scale" not in cache:
            s = self._snap
            side = self._sx if which == "x" else self._sy
            sc = s.scale[side]
            live = sc[~s.const[side]]
            g = float(live.max()) if live.size else 1.0
            rel = np.where(s.const[side], 0.0, sc / g)
            cache["relative_scale"] = (s.xp.asarray(rel, device=device_of(s.mean)), g)
        return cache["relative_scale"]

    def normalized(self) -> tuple[Array, Array, Array]:
        """(Cxx, Cyy, Cxy) / (g_x g_y ...): the co-moments in units where each side's largest
        feature scale is 1. Every measure invariant to isotropic scaling of X and of Y (CKA,
        Procrustes, shape, SVCCA, PWCCA weights) is computed from these."""
        if "normalized" not in self._cache_pair:
            rx, _ = self.relative_scale("x")
            ry, _ = self.relative_scale("y")
            if "normalized" not in self._cache_x:
                self._cache_x["normalized"] = rx[:, None] * self.zxx * rx[None, :]
            if "normalized" not in self._cache_y:
                self._cache_y["normalized"] = ry[:, None] * self.zyy * ry[None, :]
            txy = rx[:, None] * self.zxy * ry[None, :]
            self._cache_pair["normalized"] = (
                self._cache_x["normalized"],
                self._cache_y["normalized"],
                txy,
            )
        return self._cache_pair["normalized"]

    def _sync(self) -> None:
        j = self._joint
        self._cache_x, self._cache_y, self._cache_pair = {}, {}, {}
        if j.n == 0:
            self._snap = None
            return
        self._snap = j._snapshot()
        bx, by = j.blocks["X"], j.blocks["Y"]
        self._sx, self._sy = slice(bx.start, bx.stop), slice(by.start, by.stop)
        self.names = ("X", "Y")

    def update(self, X: Any, Y: Any, *, validated: bool = False) -> Moments:
        """Add a batch of paired activations, X (b, d1) and Y (b, d2) over the same b samples.

        A batch of zero samples is a no-op.
        """
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
        if self._joint.n == 0 and self.n > 0:  # a view (e.g. JointMoments.pair): rebuild it
            self._joint = _moments_to_joint(self)._joint
        self._joint.update({"X": X, "Y": Y}, validated=validated)
        self._sync()
        return self

    def merge(self, other: Moments) -> Moments:
        """Fold another ``Moments`` of the same layers (other samples) into this one."""
        if not isinstance(other, Moments):
            raise TypeError(f"merge() expects a Moments; got {type(other).__name__}.")
        if other.n == 0:
            return self
        if other._joint.n == 0 or other._joint._snapshot() is not other._snap:
            other = _moments_to_joint(other)
        if self._joint.n == 0 and self.n > 0:  # a view (e.g. JointMoments.pair): rebuild it
            self._joint = _moments_to_joint(self)._joint
        self._joint.merge(other._joint)
        self._sync()
        return self

    def swapped(self) -> Moments:
        """The same statistics with the roles of X and Y exchanged."""
        m = Moments(precision=self.precision)
        m._snap = self._snap
        m._sx, m._sy = self._sy, self._sx
        m._cache_x, m._cache_y = self._cache_y, self._cache_x
        m.names = (self.names[1], self.names[0])
        return m


def _moments_to_joint(m: Moments) -> Moments:
    """A Moments owning its own joint accumulator, rebuilt from a view (e.g. JointMoments.pair)."""
    s = m._snap
    xp = s.xp
    out = Moments(precision=m.precision)
    j = out._joint
    j._init_layout({"X": _Shape(m.d1), "Y": _Shape(m.d2)})
    sx, sy = m._sx, m._sy
    idx = np.r_[np.arange(sx.start, sx.stop), np.arange(sy.start, sy.stop)]
    dev = device_of(s.mean)
    take = xp.asarray(idx, device=dev)
    z = xp.take(xp.take(s.zcom_raw, take, axis=0), take, axis=1)
    j._merge_batch(
        xp,
        _BatchStats(
            n=s.n,
            ref=s.ref[idx],
            mh=xp.take(s.mh, take, axis=0),
            zcom=z,
            scale=s.scale[idx],
            lo=s.lo[idx],
            hi=s.hi[idx],
            eps=s.eps[idx],
            product_precision=s.product_precision,
        ),
    )
    out._sync()
    return out


class _Shape:
    def __init__(self, d: int) -> None:
        self.shape = (0, d)


# ---------------------------------------------------------------------- batch statistics
@dataclass
class _BatchStats:
    """One batch's statistics: float64 means (as a reference plus a differentiable offset),
    the co-moment of the rescaled
    centred features, and host-side per-feature scales (powers of two), extremes and the
    machine epsilon of each feature's dtype."""

    n: int
    ref: np.ndarray  # a reference point (host): the mean is ref + 2 mh
    mh: Array  # half the offset of the mean from ref (differentiable)
    zcom: Array
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    eps: np.ndarray
    product_precision: str | None = None  # set by the caller (JointMoments.update)

    def relative(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        """Scales of features start..stop over their largest non-constant one (and that one)."""
        sc = self.scale[start:stop]
        live = sc[~constant_mask(self.lo[start:stop], self.hi[start:stop], self.eps[start:stop])]
        g = float(live.max()) if live.size else 1.0
        return sc / g, g


PRECISIONS = ("auto", "float32", "float64")


def check_precision(precision: str, dtype: str | None = None) -> str:
    """Validate ``precision`` (or its former name ``dtype``); returns the precision name.

    Parameters
    ----------
    precision : {"auto", "float32", "float64"}
        Precision of the products (see :class:`JointMoments`).
    dtype : {"float64", "float32"}, optional
        Former name of ``precision``; when given, it must agree with ``precision``.

    Returns
    -------
    str
        The precision name.
    """
    if dtype is not None:
        check_option("dtype", dtype, ("float64", "float32"))
        if precision != "auto" and precision != dtype:
            raise ValueError(
                f"dtype={dtype!r} and precision={precision!r} disagree; pass only precision "
                "(dtype is its former name)."
            )
        return dtype
    check_option("precision", precision, PRECISIONS)
    return precision


def is_low_precision(dtype: Any) -> bool:
    """True for floating dtypes of at most 32 bits (float32, float16, bfloat16)."""
    return dtype_eps(dtype) >= float(np.finfo(np.float32).eps)


def product_dtype(xp: Any, arrays: Iterable[Array], precision: str) -> Any:
    """The dtype products are formed in: ``precision``, or for "auto" the inputs' own
    precision (float32 when every input is a float of at most 32 bits, else float64)."""
    if precision == "float64":
        return xp.float64
    if precision == "float32":
        return xp.float32
    return xp.float32 if all(is_low_precision(a.dtype) for a in arrays) else xp.float64


_EXP_MIN, _EXP_MAX = -1020, 1022
# float32 products of centred data in the data's units (no per-element rescaling) are safe
# from over- and underflow when every feature's scale lies in [2^-40, 2^40]
_F32_RAW_MIN, _F32_RAW_MAX = 2.0**-40, 2.0**40


def _mean_of(xp: Any, ref: np.ndarray, mh: Array) -> Array:
    """ref + 2 mh, added in an order that cannot overflow for a finite mean."""
    return xp.asarray(ref, device=device_of(mh)) + mh + mh


def _pow2_ceil(r: np.ndarray) -> np.ndarray:
    """Smallest power of two >= r (r >= 0 finite), elementwise, within [2^-1020, 2^1022]."""
    r = np.asarray(r, dtype=np.float64)
    m, e = np.frexp(r)  # r = m * 2**e with 0.5 <= m < 1 (m = e = 0 for r = 0)
    e = np.where(m == 0.5, e - 1, e)
    e = np.where(r > 0, e, _EXP_MIN)
    return np.ldexp(1.0, np.clip(e, _EXP_MIN, _EXP_MAX))


def _rescale_sym(xp: Any, Z: Array, r: np.ndarray, dev: Any) -> Array:
    """diag(r) Z diag(r) for powers of two r (exact), skipping the work when r is all ones."""
    if bool(np.all(r == 1.0)):
        return Z
    rv = xp.asarray(r, device=dev)
    return rv[:, None] * Z * rv[None, :]


_CHUNK_BYTES = 32 * 2**20
# float32 row blocks (the float32 products): fewer, larger blocks for the same flops
_CHUNK_BYTES_F32 = 64 * 2**20
_CHUNK_BYTES_GENERIC = 8 * 2**20
_CANCELLATION_LIMIT = 1e4
# the raw-product fast path forms X^T X directly: safe from over/underflow for these magnitudes
_RAW_MAX, _RAW_MIN = 2.0**300, 2.0**-300
_HALVE_AT = 2.0**1021


def _first_pass(xp: Any, arrays: Sequence[Array]) -> tuple[Any, Any, Any, list[Array]]:
    """Per-feature extremes and dtype epsilon (host float64) and float64 means (in xp)."""
    los, his, epss, means = [], [], [], []
    # numpy float arrays: their one-read extremes and sums, in worker threads
    fast = [isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.shape[0] > 0 for a in arrays]
    done = iter(thread_map(_extremes_and_sums, [a for a, f in zip(arrays, fast, strict=True) if f]))
    for a, is_fast in zip(arrays, fast, strict=True):
        d = int(a.shape[1])
        data = a.detach() if is_torch(a) else a
        if is_torch(data) and data.dtype == _torch().bool:
            data = data.to(_torch().uint8)
        if is_fast:
            lo, hi, total = next(done)
            lo, hi = lo.astype(np.float64), hi.astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                mu = total / data.shape[0]
        else:
            lo = to_numpy(xp.min(data, axis=0)).astype(np.float64)
            hi = to_numpy(xp.max(data, axis=0)).astype(np.float64)
            mu = _mean64(xp, a)
        los.append(lo)
        his.append(hi)
        epss.append(np.full(d, dtype_eps(a.dtype)))
        finite_range = bool(np.isfinite(lo).all() and np.isfinite(hi).all())
        # the sum overflowed: rescale first (non-finite entries are the caller's to report)
        if finite_range and not bool(np.all(np.isfinite(to_numpy(mu)))):
            g = _pow2_ceil(np.maximum(np.abs(lo), np.abs(hi)))
            mu = _mean64(xp, a, inv=g**-1.0) * xp.asarray(g, device=device_of(a))
        means.append(mu)
    return np.concatenate(los), np.concatenate(his), np.concatenate(epss), means


#: row blocks of the first pass stay in cache while their extremes and sums are taken
_FIRST_PASS_BYTES = 512 * 2**10


def _extremes_and_sums(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column minima, maxima (NaN-propagating) and float64 sums of a float numpy array in one
    read of it: cache-sized row blocks, each reduced three times while it is in cache."""
    n, d = a.shape
    rows = int(max(16, _FIRST_PASS_BYTES // (a.itemsize * max(1, d))))
    # a sum that overflows is rescaled by the caller (_first_pass), NaN reported there
    with np.errstate(over="ignore", invalid="ignore"):
        b = a[:rows]
        lo, hi, total = b.min(axis=0), b.max(axis=0), b.sum(axis=0, dtype=np.float64)
        for s0 in range(rows, n, rows):
            b = a[s0 : s0 + rows]
            np.minimum(lo, b.min(axis=0), out=lo)
            np.maximum(hi, b.max(axis=0), out=hi)
            total += b.sum(axis=0, dtype=np.float64)
    return lo, hi, total


def _torch() -> Any:
    import torch

    return torch


def _mean64(xp: Any, a: Array, inv: np.ndarray | None = None) -> Array:
    """Column means in float64 without a float64 copy of the whole array."""
    nb = int(a.shape[0])
    if isinstance(a, np.ndarray):
        if inv is None:
            return a.mean(axis=0, dtype=np.float64)
        return (a * inv).mean(axis=0)
    f64 = xp.float64
    rows = int(max(64, min(nb, _CHUNK_BYTES_GENERIC // (8 * max(1, int(a.shape[1]))))))
    inv_x = None if inv is None else xp.asarray(inv, device=device_of(a))
    total = None
    for s0 in range(0, nb, rows):
        c = a[s0 : s0 + rows]
        c = xp.astype(c, f64) if c.dtype != f64 else c
        if inv_x is not None:
            c = c * inv_x
        part = xp.sum(c, axis=0)
        total = part if total is None else total + part
    return total / nb


def batch_stats(
    xp: Any,
    arrays: Sequence[Array],
    dt: Any,
    *,
    ref: np.ndarray | None = None,
    row_norms: list[Any] | None = None,
    check: Sequence[str] | None = None,
) -> _BatchStats:
    """Statistics of the column-concatenated batch, computed without over- or underflow.

    Pass 1: per-feature extremes and float64 means. Each feature's scale is the power of two
    just above its largest deviation from the mean. Pass 2 (chunks of rows): centre in
    float64, divide by the scale, cast to the working precision ``dt`` and accumulate the
    symmetric product. Exactly constant features (min == max) contribute exact zeros.

    With ``row_norms`` (an empty list), the squared norms of every centred row of every array,
    in units of that array's largest feature scale, are appended to it (one (n,) vector per
    array). With ``check`` (one name per array), non-finite values raise the
    :func:`~nncompare._validation.check_finite` error naming the array; they are detected
    from the first pass's extremes, not by a pass of their own.
    """
    nb = int(arrays[0].shape[0])
    lo, hi, eps, means = _first_pass(xp, arrays)
    if check is not None and not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        for a, name in zip(arrays, check, strict=True):
            check_finite(a, name=name)
    mu = np.concatenate([to_numpy(m) for m in means])
    scale, inv, halve = _feature_scales(lo, hi, mu)
    dims = [int(a.shape[1]) for a in arrays]
    offs = np.cumsum([0, *dims])
    if ref is None:
        ref = mu  # the first batch's (detached) mean is the accumulator's reference
    dev = device_of(arrays[0])
    mean = means[0] if len(means) == 1 else xp.concat(means)
    stats = _BatchStats(
        n=nb,
        ref=ref,
        mh=mean * 0.5 - xp.asarray(ref * 0.5, device=dev),
        zcom=None,
        scale=scale,
        lo=lo,
        hi=hi,
        eps=eps,
    )
    rel = None
    if row_norms is not None:
        rel = [stats.relative(int(offs[i]), int(offs[i + 1]))[0] for i in range(len(arrays))]
    if all(isinstance(a, np.ndarray) for a in arrays):
        zcom, colsum = _zcom_numpy(arrays, means, inv, halve, offs, dt, row_norms, rel, stats)
        if colsum is not None:  # corrected two-pass: remove the rounding of the mean
            zcom -= np.outer(colsum, colsum) / nb
            stats.mh = stats.mh + colsum * (0.5 * scale) / nb
    else:
        zcom = None
        if dt != xp.float64 and row_norms is None and is_torch(arrays[0]):
            zcom = _zcom_torch_f32(arrays, means, inv, offs, stats)
        if zcom is None:
            zcom, colsum = _zcom_generic(xp, arrays, means, inv, halve, offs, dt, row_norms, rel)
            zcom = zcom - (colsum[:, None] * colsum[None, :]) / nb
            stats.mh = stats.mh + colsum * xp.asarray(0.5 * scale, device=dev) / nb
    stats.zcom = zcom
    return stats


_batch_stats = batch_stats  # former private name (JointMoments.update)


@dataclass
class CrossMoments:
    """What a measure needing no within-layer covariance (Procrustes) needs of (X, Y).

    In units of each side's largest feature scale (powers of two ``gx``, ``gy``), constant
    features (:func:`nncompare._validation.constant_mask`) zeroed:
    ``cross`` = Σ (x - x̄)(y - ȳ)ᵀ / (gx gy), shape (d1, d2); ``ssx`` = Σ ‖x - x̄‖² / gx²
    and ``ssy`` likewise (0-d arrays). One cross product instead of the three of
    :class:`Moments` (a third of the flops).
    """

    n: int
    xp: Any
    cross: Array
    ssx: Array
    ssy: Array
    product_precision: str


def cross_moments(X: Array, Y: Array, *, precision: str = "auto") -> CrossMoments:
    """:class:`CrossMoments` of validated (n, d1), (n, d2) arrays of one library.

    The safety of :class:`JointMoments` carries over: per-feature power-of-two scales (no
    over- or underflow), centring before every product (float32 data against the
    float32-rounded mean with the exact float64 correction; other data in float64 with the
    corrected two-pass formula; float64 data may use raw products when the means are small
    against the spread), products in ``precision`` summed in float64, autograd for torch.
    """
    xp = namespace(X, Y)
    arrays = [X, Y]
    dt = product_dtype(xp, arrays, check_precision(precision))
    nb = int(X.shape[0])
    d1 = int(X.shape[1])
    lo, hi, eps, means = _first_pass(xp, arrays)
    mu = np.concatenate([to_numpy(m) for m in means])
    scale, inv, halve = _feature_scales(lo, hi, mu)
    stats = _BatchStats(n=nb, ref=mu, mh=None, zcom=None, scale=scale, lo=lo, hi=hi, eps=eps)
    if isinstance(X, np.ndarray) and isinstance(Y, np.ndarray):
        cross, sq, colsum = _cross_numpy(X, Y, means, inv, halve, dt, stats)
    else:
        cross, sq, colsum = _cross_generic(xp, X, Y, means, inv, halve, dt)
    if colsum is not None:  # corrected two-pass: remove the rounding of the mean
        cross = cross - (colsum[:d1][:, None] * colsum[d1:][None, :]) / nb
        sq = sq - (colsum * colsum) / nb
    const = constant_mask(lo, hi, eps)
    rel = np.zeros(lo.shape[0])
    for sl in (slice(0, d1), slice(d1, None)):
        sc, c = scale[sl], const[sl]
        g = float(sc[~c].max()) if bool(np.any(~c)) else 1.0
        rel[sl] = np.where(c, 0.0, sc / g)
    r = xp.asarray(rel, device=device_of(X))
    rx, ry = r[:d1], r[d1:]
    return CrossMoments(
        n=nb,
        xp=xp,
        cross=rx[:, None] * cross * ry[None, :],
        ssx=xp.sum(sq[:d1] * (rx * rx)),
        ssy=xp.sum(sq[d1:] * (ry * ry)),
        product_precision="float64" if dt == xp.float64 else "float32",
    )


def _feature_scales(
    lo: np.ndarray, hi: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature powers of two above the largest deviation from the mean, their inverses
    (0 for exactly constant features) and where the deviations nearly overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        half = np.maximum(hi * 0.5 - mu * 0.5, mu * 0.5 - lo * 0.5)
    half = np.clip(np.nan_to_num(half, nan=0.0), 0.0, None)
    scale = 2.0 * _pow2_ceil(half)
    inv = np.where(lo == hi, 0.0, 1.0 / scale)
    return scale, inv, half >= _HALVE_AT


def _cross_numpy(
    X: np.ndarray,
    Y: np.ndarray,
    means: Sequence[np.ndarray],
    inv: np.ndarray,
    halve: np.ndarray,
    dt: Any,
    stats: _BatchStats,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(cross, per-feature sums of squares, column sums or None) of the rescaled, centred
    features; the three paths of :func:`_zcom_numpy`, for the cross block only."""
    nb, d1 = X.shape
    d2 = Y.shape[1]
    mx, my = means
    exact_const = stats.lo == stats.hi
    if dt == np.float32 and _f32_direct([X, Y], stats):
        rows = int(max(64, min(nb, _CHUNK_BYTES_F32 // (4 * (d1 + d2)))))
        mx32, my32 = mx.astype(np.float32), my.astype(np.float32)
        bx = np.empty((min(rows, nb), d1), dtype=np.float32)
        by = np.empty((min(rows, nb), d2), dtype=np.float32)
        cross = np.zeros((d1, d2))
        sq = np.zeros(d1 + d2)
        for s0 in range(0, nb, rows):
            s1 = min(nb, s0 + rows)
            zx, zy = bx[: s1 - s0], by[: s1 - s0]
            np.subtract(X[s0:s1], mx32, out=zx, dtype=np.float32)
            np.subtract(Y[s0:s1], my32, out=zy, dtype=np.float32)
            cross += zx.T @ zy
            _add_column_squares(sq[:d1], zx)
            _add_column_squares(sq[d1:], zy)
        c = _residual_means(means, [mx32, my32])
        cross -= nb * np.outer(c[:d1], c[d1:])
        sq -= nb * c * c
        cross *= inv[:d1, None]
        cross *= inv[None, d1:]
        return cross, sq * (inv * inv), None
    if dt == np.float64 and X.dtype == np.float64 and Y.dtype == np.float64:
        amax = np.maximum(np.abs(stats.lo), np.abs(stats.hi))
        # exactly constant features may be tiny (0) but not huge: their raw squares overflow too
        if bool(np.all((amax <= _RAW_MAX) & (exact_const | (amax >= _RAW_MIN)))):
            mu = np.concatenate([mx, my])
            sq = np.concatenate([np.einsum("ij,ij->j", X, X), np.einsum("ij,ij->j", Y, Y)])
            sq -= nb * mu * mu
            live = ~exact_const
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = nb * mu[live] ** 2 / sq[live]
            if np.all(sq[live] > 0) and np.all(ratio < _CANCELLATION_LIMIT):
                cross = X.T @ Y
                cross -= nb * np.outer(mx, my)
                cross *= inv[:d1, None]
                cross *= inv[None, d1:]
                sq[exact_const] = 0.0
                return cross, sq * (inv * inv), None
    rows = int(max(64, min(nb, _CHUNK_BYTES // (8 * (d1 + d2)))))
    buf = np.empty((min(rows, nb), d1 + d2))
    low = dt != np.float64
    buf32 = np.empty(buf.shape, dtype=np.float32) if low else None
    cross = np.zeros((d1, d2))
    sq = np.zeros(d1 + d2)
    colsum = np.zeros(d1 + d2)
    offs = (0, d1, d1 + d2)
    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        Z = buf[: s1 - s0]
        for idx, (a, m) in enumerate(((X, mx), (Y, my))):
            o0, o1 = offs[idx], offs[idx + 1]
            zs = Z[:, o0:o1]
            if bool(np.any(halve[o0:o1])):
                np.multiply(a[s0:s1], 0.5, out=zs, dtype=np.float64)
                zs -= 0.5 * m
                zs *= 2.0 * inv[o0:o1]
            else:
                np.subtract(a[s0:s1], m, out=zs, dtype=np.float64)
                zs *= inv[o0:o1]
        colsum += Z.sum(axis=0)
        sq += np.einsum("ij,ij->j", Z, Z)
        if low:
            Z32 = buf32[: s1 - s0]
            Z32[...] = Z
            cross += Z32[:, :d1].T @ Z32[:, d1:]
        else:
            cross += Z[:, :d1].T @ Z[:, d1:]
    return cross, sq, colsum


def _add_column_squares(out: np.ndarray, Z: np.ndarray, rows: int = 256) -> None:
    """out += column sums of Z², float32 sums of 256-row blocks added in float64 (the
    summation error of a block, ~256 · 2⁻²⁴, instead of that of the whole column)."""
    for s0 in range(0, Z.shape[0], rows):
        b = Z[s0 : s0 + rows]
        out += np.einsum("ij,ij->j", b, b)


def _cross_generic(
    xp: Any, X: Array, Y: Array, means: Sequence[Array], inv: np.ndarray, halve: np.ndarray, dt: Any
) -> tuple[Array, Array, Array]:
    """Any array library (torch, on any device, with autograd): chunks centred in float64."""
    nb, d1 = int(X.shape[0]), int(X.shape[1])
    d2 = int(Y.shape[1])
    dev = device_of(X)
    f64 = xp.float64
    rows = int(max(64, min(nb, _CHUNK_BYTES_GENERIC // (8 * (d1 + d2)))))
    parts = []
    for a, m, o0, o1 in ((X, means[0], 0, d1), (Y, means[1], d1, d1 + d2)):
        h = bool(np.any(halve[o0:o1]))
        parts.append((a, m, h, xp.asarray(inv[o0:o1] * (2.0 if h else 1.0), device=dev)))
    cross = sq = colsum = None
    for s0 in range(0, nb, rows):
        cs = []
        for a, m, h, iv in parts:
            c = a[s0 : s0 + rows]
            c = xp.astype(c, f64) if c.dtype != f64 else c
            cs.append((c * 0.5 - m * 0.5) * iv if h else (c - m) * iv)
        cx, cy = cs
        s = xp.concat([xp.sum(cx * cx, axis=0), xp.sum(cy * cy, axis=0)])
        col = xp.concat([xp.sum(cx, axis=0), xp.sum(cy, axis=0)])
        if dt != f64:
            cx, cy = xp.astype(cx, dt), xp.astype(cy, dt)
        p = xp.matrix_transpose(cx) @ cy
        p = xp.astype(p, f64) if p.dtype != f64 else p
        cross = p if cross is None else cross + p
        sq = s if sq is None else sq + s
        colsum = col if colsum is None else colsum + col
    return cross, sq, colsum


def _raw_product_moments(
    arrays: Sequence[np.ndarray], means: Sequence[np.ndarray], exact_const: np.ndarray
) -> np.ndarray | None:
    """Centred co-moments from products of the raw float64 arrays, corrected by the means.

    C = Zᵀ Z − n μ μᵀ needs no centred copy (the BLAS products read the inputs in place), but
    it cancels digits when a feature's mean is large against its spread: the relative error
    is about eps · n μ² / C_jj. Returns None (use the centred path) when that ratio exceeds
    ``_CANCELLATION_LIMIT`` for any feature that is not exactly constant.
    """
    nb = arrays[0].shape[0]
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
    diag = np.diagonal(com)[~exact_const]
    mu = mu[~exact_const]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = nb * mu * mu / diag
    if not np.all(diag > 0) or not np.all(ratio < _CANCELLATION_LIMIT):
        return None
    return com


def _centred_row_norms(a: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σⱼ ((a_ij - mu_j) w_j)² for every row i: centred exactly, in cache-sized row blocks
    spread over the workers (no centred copy of the array is kept)."""
    out = np.empty(int(a.shape[0]))

    def norms(r0: int, r1: int) -> None:
        t = a[r0:r1] - mu
        t *= w
        np.einsum("ij,ij->i", t, t, out=out[r0:r1])

    block_map(norms, int(a.shape[0]), _CENTRE_ROWS)
    return out


def _zcom_numpy(
    arrays: Sequence[np.ndarray],
    means: Sequence[np.ndarray],
    inv: np.ndarray,
    halve: np.ndarray,
    offs: np.ndarray,
    dt: Any,
    row_norms: list[Any] | None,
    rel: list[np.ndarray] | None,
    stats: _BatchStats,
) -> tuple[np.ndarray, np.ndarray | None]:
    """numpy: the raw-product fast path when it is safe, else centre block by block into a
    reused buffer and accumulate ``Zᵀ Z`` (BLAS syrk: half the flops of a general product).

    No copy of the whole batch is made. Returns the co-moment and, for the centred path, the
    column sums of the centred rescaled rows (rounding of the mean, for the corrected
    two-pass formula of Chan, Golub & LeVeque 1983), or None.
    """
    exact_const = stats.lo == stats.hi
    if dt == np.float64 and len(arrays) <= 3:
        amax = np.maximum(np.abs(stats.lo), np.abs(stats.hi))
        safe = (amax <= _RAW_MAX) & (exact_const | (amax >= _RAW_MIN))  # huge constants overflow
        if all(a.dtype == np.float64 for a in arrays) and bool(np.all(safe)):
            com = _raw_product_moments(arrays, means, exact_const)
            if com is not None:
                com *= inv[:, None]
                com *= inv[None, :]
                if row_norms is not None:
                    assert rel is not None
                    row_norms.extend(
                        _centred_row_norms(a, mu, inv[int(offs[i]) : int(offs[i + 1])] * rel[i])
                        for i, (a, mu) in enumerate(zip(arrays, means, strict=True))
                    )
                return com, None
    if dt == np.float32:
        fast = _zcom_numpy_f32(arrays, means, inv, offs, row_norms, stats)
        if fast is not None:
            return fast, None
    nb = arrays[0].shape[0]
    D = int(offs[-1])
    rows = int(max(64, min(nb, _CHUNK_BYTES // (8 * D))))
    buf = np.empty((rows, D))
    buf32 = np.empty((rows, D), dtype=np.float32) if dt != np.float64 else None
    com = np.zeros((D, D))
    colsum = np.zeros(D)
    base = len(row_norms) if row_norms is not None else 0
    if row_norms is not None:
        row_norms.extend(np.empty(nb) for _ in arrays)
    halved = [bool(np.any(halve[int(offs[i]) : int(offs[i + 1])])) for i in range(len(arrays))]

    def centre(s0: int, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) of the chunk starting at s0, centred and rescaled into the buffer
        (with their squared norms); returns their column sums."""
        Z = buf[r0:r1]
        for idx, (a, mu) in enumerate(zip(arrays, means, strict=True)):
            o0, o1 = int(offs[idx]), int(offs[idx + 1])
            block = a[s0 + r0 : s0 + r1]
            zs = Z[:, o0:o1]
            if halved[idx]:  # the range nearly overflows: centre halved values
                np.multiply(block, 0.5, out=zs, dtype=np.float64)
                zs -= 0.5 * mu
                zs *= 2.0 * inv[o0:o1]
            else:
                np.subtract(block, mu, out=zs, dtype=np.float64)
                zs *= inv[o0:o1]
            if row_norms is not None:
                t = zs * rel[idx]
                np.einsum("ij,ij->i", t, t, out=row_norms[base + idx][s0 + r0 : s0 + r1])
        return Z.sum(axis=0)

    full = True  # every chunk's Gram came back whole (then so does their sum)
    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        full &= _gram_is_full(s1 - s0, D)
        # fixed blocks of rows (their column sums added in order: the same bits whatever
        # the number of workers), spread over the workers
        block = functools.partial(centre, s0)
        for part_sum in block_map(block, s1 - s0, _CENTRE_ROWS):
            colsum += part_sum
        Z = buf[: s1 - s0]
        if buf32 is not None:
            Z32 = buf32[: s1 - s0]
            Z32[...] = Z
            com += _upper_gram(Z32)
        elif s0 == 0 and s1 == nb:
            com = _upper_gram(Z)
        else:
            com += _upper_gram(Z)
    return (com if full else _mirror_upper(com)), colsum


#: rows per block of the float64 centring pass (a block's column sums are one partial sum)
_CENTRE_ROWS = 512


def _mirror_upper(a: np.ndarray) -> np.ndarray:
    """A square matrix of which only the upper triangle is meaningful, made symmetric in
    place, tile by tile (transposed tiles stay in cache)."""
    D = int(a.shape[0])
    T = _FINISH_TILE
    for i in range(0, D, T):
        i1 = min(D, i + T)
        blk = a[i:i1, i:i1]
        low = np.tril_indices(i1 - i, -1)
        blk[low] = blk.T[low]
        for j in range(i1, D, T):
            j1 = min(D, j + T)
            a[j:j1, i:i1] = a[i:i1, j:j1].T
    return a


def _f32_direct(arrays: Sequence[Any], stats: _BatchStats) -> bool:
    """Whether float32 products may be formed from float32-centred data in the data's units:
    every input is a float of at most 32 bits and every non-constant feature's scale lies in
    [2^-40, 2^40] (no over- or underflow of the products, no overflow of the centring)."""
    return all(is_low_precision(a.dtype) for a in arrays) and _f32_scales_ok(stats)


def _f32_scales_ok(stats: _BatchStats) -> bool:
    live = stats.scale[stats.lo != stats.hi]
    return bool(np.all((live >= _F32_RAW_MIN) & (live <= _F32_RAW_MAX)))


def _residual_means(means: Sequence[Any], means32: Sequence[Any]) -> np.ndarray:
    """mean - float32(mean) per feature (host float64; the subtraction is exact)."""
    pairs = zip(means, means32, strict=True)
    return np.concatenate([to_numpy(m) - to_numpy(m32).astype(np.float64) for m, m32 in pairs])


def _zcom_numpy_f32(
    arrays: Sequence[np.ndarray],
    means: Sequence[np.ndarray],
    inv: np.ndarray,
    offs: np.ndarray,
    row_norms: list[Any] | None,
    stats: _BatchStats,
) -> np.ndarray | None:
    """float32 products of float32 data, centred in float32 against the float32-rounded mean.

    Each centred value x - fl32(mean) is the correctly rounded difference (one float32
    rounding, as when centring in float64 and casting). The residual c = mean - fl32(mean)
    (at most half an ulp of the mean; float32 data that vary at all vary by more than that)
    is removed exactly afterwards in float64: Σ (z - c)(z - c)ᵀ = Zᵀ Z - n c cᵀ, since
    Σ z = n c. Chunks of ``_CHUNK_BYTES_F32`` are split into :func:`_gram_blocks` row
    blocks, each multiplied in float32 (:func:`_block_grams`); the blocks' products are summed
    in float64 and the per-feature powers of two are applied to the (D, D) result. Returns
    None when the magnitudes need per-element rescaling (the float64 centring path then
    runs).
    """
    if not _f32_direct(arrays, stats):
        return None
    nb = int(arrays[0].shape[0])
    D = int(offs[-1])
    means32 = [np.asarray(m, dtype=np.float32) for m in means]
    rows = int(max(64, min(nb, _CHUNK_BYTES_F32 // (4 * D))))
    buf = scratch((min(rows, nb), D), np.float32)
    com = None
    c = _residual_means(means, means32)
    spans = [(int(offs[i]), int(offs[i + 1])) for i in range(len(arrays))]
    norms: list[np.ndarray] = []
    if row_norms is not None:
        norms = [np.empty(nb) for _ in arrays]
        row_norms.extend(norms)
        gs = [stats.relative(o0, o1)[1] for o0, o1 in spans]
        cs = [c[o0:o1].astype(np.float32) for o0, o1 in spans]
        ccs = [float(c[o0:o1] @ c[o0:o1]) for o0, o1 in spans]

    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        Z = buf[: s1 - s0]

        def centre(rs: slice, s0: int = s0, Z: np.ndarray = Z) -> None:
            """Rows ``rs`` of the chunk centred into the buffer (and their squared norms)."""
            for idx, (o0, o1) in enumerate(spans):
                zs = Z[rs, o0:o1]
                np.subtract(
                    arrays[idx][s0 + rs.start : s0 + rs.stop],
                    means32[idx],
                    out=zs,
                    dtype=np.float32,
                )
                if row_norms is not None:
                    # |z - c|² = |z|² - 2 z·c + |c|², in units of the array's largest scale g
                    sq = np.einsum("ij,ij->i", zs, zs).astype(np.float64)
                    sq -= 2.0 * (zs @ cs[idx]).astype(np.float64)
                    sq += ccs[idx]
                    sq *= 1.0 / (gs[idx] * gs[idx])
                    norms[idx][s0 + rs.start : s0 + rs.stop] = sq

        parts = _block_grams(Z, centre)
        if s1 == nb and com is None:  # one chunk: sum, correct and rescale in one go
            return _finish_f32_product(parts, nb, c, inv, upper=True)
        for q in parts:
            if com is None:
                com = q.astype(np.float64)
            else:
                com += q
    return _finish_f32_product(com, nb, c, inv, upper=True)


#: a row block of a float32 Gram (:func:`_gram_blocks`) has at least this many rows per feature
_GRAM_BLOCK_ROWS = 4
#: ... except for the first split in two, which needs only this many rows per block
_GRAM_FIRST_SPLIT_ROWS = 2048
#: the most row blocks one chunk's float32 Gram is split into
_GRAM_MAX_BLOCKS = 16


def _gram_blocks(rows: int, features: int) -> int:
    """Into how many equal row blocks the float32 Gram of a (rows, features) chunk is split.

    A power of two, at most ``_GRAM_MAX_BLOCKS``. Two blocks where each keeps at least
    ``min(_GRAM_BLOCK_ROWS * features, _GRAM_FIRST_SPLIT_ROWS)`` rows: two blocks let two
    workers multiply with single-threaded BLAS, which pays even for wide chunks (the whole
    ``nc.pairwise`` CKA grid of 10 layers of 5000 × 256 float32, two blocks of
    2500 × 2560: 281–284 ms against 289–322 ms for one threaded product, at two threads;
    benchmarks/README.md). Beyond two, blocks are halved again only while each keeps at
    least ``_GRAM_BLOCK_ROWS`` rows per feature: a product of fewer rows runs well below the
    machine's matmul rate, and every further block adds a (features, features) partial to
    mirror and to sum. The count depends on the shape alone, so the blocks' partial
    products, and their sum, have the same bits whatever the number of workers."""
    if rows < 2 * min(_GRAM_BLOCK_ROWS * features, _GRAM_FIRST_SPLIT_ROWS):
        return 1
    blocks = 2
    while blocks < _GRAM_MAX_BLOCKS and rows >= 2 * blocks * _GRAM_BLOCK_ROWS * features:
        blocks *= 2
    return blocks


def _block_grams(Z: np.ndarray, fill: Callable[[slice], None]) -> list[np.ndarray]:
    """The Grams of the :func:`_gram_blocks` row blocks of ``Z`` (float32, in row order;
    only their upper triangles are meant to be read), after ``fill(rows)`` has written
    each block's rows.

    With at least as many blocks as workers, each worker fills its blocks and multiplies
    them with single-threaded BLAS, so no BLAS thread is left spinning on a core
    afterwards: OpenBLAS's idle workers spin for about 0.1 s after each multi-threaded
    call, and the decompositions that follow run on this package's own threads, whose speed
    a spinning BLAS worker halved (measured: benchmarks/README.md). Up to that many workers
    the bits do not depend on their number. With more workers than blocks, the rows are
    filled by all workers and each block is one multi-threaded product: with OpenBLAS's
    SkylakeX kernels the same bits, with its Haswell ones differences of float32's
    rounding of a block (tests/test_f32_blocks.py). Both
    branches use numpy's product (syrk and a mirror copy), never scipy's syrk, which is
    another OpenBLAS build whose kernels need not give the same bits; numpy's also
    releases the GIL, so the blocks overlap.
    """
    rows, D = int(Z.shape[0]), int(Z.shape[1])
    edges = np.linspace(0, rows, _gram_blocks(rows, D) + 1).astype(int)
    blocks = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    workers = worker_count()
    if workers > len(blocks):
        with blas_single_threaded():  # fill's own small products (row norms)
            thread_map(fill, row_slices(rows, workers), workers)
        return [Z[b].T @ Z[b] for b in blocks]

    def block(b: slice) -> np.ndarray:
        fill(b)
        return Z[b].T @ Z[b]

    with blas_single_threaded():
        return thread_map(block, blocks, workers)


#: rows per feature from which the Gram uses numpy's product rather than scipy's syrk
_NUMPY_GRAM_ROWS = 4


def _gram_is_full(rows: int, features: int) -> bool:
    """Whether :func:`_upper_gram` of a (rows, features) block fills both triangles."""
    return rows >= _NUMPY_GRAM_ROWS * features


def _upper_gram(Z: np.ndarray) -> np.ndarray:
    """Zᵀ Z, of which callers read only the upper triangle (C order); both triangles are
    filled where :func:`_gram_is_full`.

    With many rows per feature: numpy's product (BLAS syrk, then a mirror copy that is
    small next to it). That is numpy's own BLAS, the one every other product and
    decomposition here runs on; scipy ships a second OpenBLAS, whose threads keep spinning
    on the cores for about 0.1 s after each call and so halve the speed of whatever numpy
    runs next with two threads (measured: benchmarks/README.md). With few rows per feature
    the mirror copy would be a large share of the time: scipy's syrk fills one triangle.
    """
    if _gram_is_full(int(Z.shape[0]), int(Z.shape[1])):
        return Z.T @ Z
    from scipy.linalg import blas

    fn = blas.ssyrk if Z.dtype == np.float32 else blas.dsyrk
    # Z.T is Z's Fortran-ordered view: C = Z.T Z in Fortran order, lower triangle filled,
    # whose C-ordered transpose is the upper triangle
    return fn(1.0, Z.T, trans=0, lower=1).T


def _finish_f32_product(
    p: np.ndarray | Sequence[np.ndarray],
    nb: int,
    c: np.ndarray,
    inv: np.ndarray,
    *,
    upper: bool = False,
) -> np.ndarray:
    """(p - nb c cᵀ) · inv invᵀ in float64, tile by tile (tiles stay in cache; split over
    worker threads).

    ``p`` (float32 or float64) is the product of the data centred on the float32-rounded
    means, or a sequence of partial products (row blocks) summed here in float64, in order;
    ``c`` the residual means (see :func:`_zcom_numpy_f32`); the inverse scales are powers
    of two (or 0), so the rescaling is exact. ``upper``: only the upper triangle of p is
    referenced, and each tile above the diagonal is mirrored below it as it is finished.
    """
    parts = [p] if isinstance(p, np.ndarray) else list(p)
    D = int(parts[0].shape[0])
    out = parts[0] if len(parts) == 1 and parts[0].dtype == np.float64 else np.empty((D, D))
    u = (nb * c) * inv  # nb c_i inv_i
    v = c * inv
    T = _FINISH_TILE
    tiles = [(i, j) for i in range(0, D, T) for j in range(i if upper else 0, D, T)]

    def finish(part: list[tuple[int, int]]) -> None:
        for i, j in part:
            i1, j1 = min(D, i + T), min(D, j + T)
            src = parts[0][i:i1, j:j1]
            if len(parts) > 1:
                src = src.astype(np.float64)
                for q in parts[1:]:
                    src += q[i:i1, j:j1]
            if upper and i == j:  # the diagonal tile: its upper triangle, mirrored
                src = np.triu(src) + np.triu(src, 1).T
            blk = out[i:i1, j:j1]
            np.multiply(src, inv[i:i1, None], out=blk)
            blk *= inv[None, j:j1]
            blk -= u[i:i1, None] * v[None, j:j1]
            if upper and j > i:
                out[j:j1, i:i1] = blk.T

    workers = worker_count()
    thread_map(finish, [tiles[k::workers] for k in range(workers)], workers)
    return out


#: edge of the square tiles :func:`_finish_f32_product` works on (float64: 512 KiB)
_FINISH_TILE = 256


def _zcom_generic(
    xp: Any,
    arrays: Sequence[Array],
    means: Sequence[Array],
    inv: np.ndarray,
    halve: np.ndarray,
    offs: np.ndarray,
    dt: Any,
    row_norms: list[Any] | None,
    rel: list[np.ndarray] | None,
) -> tuple[Array, Array]:
    """Any array library (torch, on any device, with autograd): the same chunked product,
    holding only a chunk of centred rows (``_CHUNK_BYTES_GENERIC``) at a time."""
    nb = int(arrays[0].shape[0])
    D = int(offs[-1])
    dev = device_of(arrays[0])
    f64 = xp.float64
    rows = int(max(64, min(nb, _CHUNK_BYTES_GENERIC // (8 * D))))
    invs, halves, rels = [], [], []
    for idx in range(len(arrays)):
        o0, o1 = int(offs[idx]), int(offs[idx + 1])
        h = bool(np.any(halve[o0:o1]))
        halves.append(h)
        invs.append(xp.asarray(inv[o0:o1] * (2.0 if h else 1.0), device=dev))
        rels.append(None if rel is None else xp.asarray(rel[idx], device=dev))
    norms: list[list[Array]] = [[] for _ in arrays]
    if is_torch(arrays[0]) and not any(a.requires_grad for a in arrays):
        return _zcom_torch_buffered(arrays, means, invs, halves, rels, offs, dt, rows, row_norms)
    com = colsum = None
    for s0 in range(0, nb, rows):
        parts = []
        for idx, (a, mu) in enumerate(zip(arrays, means, strict=True)):
            c = a[s0 : s0 + rows]
            c = xp.astype(c, f64) if c.dtype != f64 else c
            c = (c * 0.5 - mu * 0.5) * invs[idx] if halves[idx] else (c - mu) * invs[idx]
            if row_norms is not None:
                t = c * rels[idx]
                norms[idx].append(xp.sum(t * t, axis=1))
            parts.append(c)
        Z = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
        del parts
        cs = xp.sum(Z, axis=0)
        colsum = cs if colsum is None else colsum + cs
        if dt != f64:
            Z = xp.astype(Z, dt)
        p = xp.matrix_transpose(Z) @ Z
        p = xp.astype(p, f64) if p.dtype != f64 else p
        com = p if com is None else com + p
    if row_norms is not None:
        row_norms.extend(v[0] if len(v) == 1 else xp.concat(v) for v in norms)
    return com, colsum


def _zcom_torch_f32(
    arrays: Sequence[Array],
    means: Sequence[Array],
    inv: np.ndarray,
    offs: np.ndarray,
    stats: _BatchStats,
) -> Array | None:
    """torch without autograd: float32 products of float32-centred data (see
    :func:`_zcom_numpy_f32`), on the arrays' device, in row blocks summed in float64."""
    import torch

    if any(a.requires_grad for a in arrays) or any(m.requires_grad for m in means):
        return None
    if not _f32_direct(arrays, stats):
        return None
    nb = int(arrays[0].shape[0])
    D = int(offs[-1])
    dev = arrays[0].device
    rows = int(max(64, min(nb, _CHUNK_BYTES_GENERIC // (4 * D))))
    means32 = [m.to(torch.float32) for m in means]
    buf = torch.empty((min(rows, nb), D), dtype=torch.float32, device=dev)
    com = torch.zeros((D, D), dtype=torch.float64, device=dev)
    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        Z = buf[: s1 - s0]
        for idx, a in enumerate(arrays):
            torch.sub(a[s0:s1], means32[idx], out=Z[:, int(offs[idx]) : int(offs[idx + 1])])
        com += (Z.mT @ Z).to(torch.float64)
    c = torch.as_tensor(_residual_means(means, means32), device=dev)
    iv = torch.as_tensor(inv, device=dev)
    com -= nb * (c[:, None] * c[None, :])
    return com * iv[:, None] * iv[None, :]


def _zcom_torch_buffered(
    arrays: Sequence[Array],
    means: Sequence[Array],
    invs: list[Array],
    halves: list[bool],
    rels: list[Array | None],
    offs: np.ndarray,
    dt: Any,
    rows: int,
    row_norms: list[Any] | None,
) -> tuple[Array, Array]:
    """torch without autograd: centre each chunk in place into one reused float64 buffer."""
    import torch

    nb = int(arrays[0].shape[0])
    D = int(offs[-1])
    dev = arrays[0].device
    # every buffer is allocated once: per-chunk temporaries interleaved with retained results
    # fragment the heap (glibc), and the resident size then grows with n
    buf = torch.empty((min(rows, nb), D), dtype=torch.float64, device=dev)
    com = torch.zeros((D, D), dtype=torch.float64, device=dev)
    colsum = torch.zeros(D, dtype=torch.float64, device=dev)
    if row_norms is not None:
        width = max(int(a.shape[1]) for a in arrays)
        tmp = torch.empty((min(rows, nb), width), dtype=torch.float64, device=dev)
        outs = [torch.empty(nb, dtype=torch.float64, device=dev) for _ in arrays]
    for s0 in range(0, nb, rows):
        s1 = min(nb, s0 + rows)
        Z = buf[: s1 - s0]
        for idx, (a, mu) in enumerate(zip(arrays, means, strict=True)):
            zs = Z[:, int(offs[idx]) : int(offs[idx + 1])]
            block = a[s0:s1]
            zs.copy_(block)  # casts any dtype (bool, integers, half) to float64
            if halves[idx]:
                zs.mul_(0.5)
                zs.sub_(mu * 0.5)
            else:
                zs.sub_(mu)
            zs.mul_(invs[idx])
            if row_norms is not None:
                t = tmp[: s1 - s0, : zs.shape[1]]
                torch.mul(zs, rels[idx], out=t)
                t.mul_(t)
                torch.sum(t, dim=1, out=outs[idx][s0:s1])
        colsum += Z.sum(dim=0)
        Zp = Z if dt == torch.float64 else Z.to(dt)
        com += (Zp.mT @ Zp).to(torch.float64)
    if row_norms is not None:
        row_norms.extend(outs)
    return com, colsum


def centred_normalised(xp: Any, X: Array) -> tuple[Array, float]:
    """Centred float64 copy of X in units of its largest feature scale, constant features 0.

    Returns ``(Xt, g)`` with ``Xt = (X - mean) / g`` (g a power of two about the size of the
    largest deviation of any non-constant feature) and the columns of constant features
    (:func:`nncompare._validation.constant_mask`) set to exactly 0. For Gram-space
    computations of measures invariant to isotropic scaling: products of ``Xt`` neither
    overflow nor underflow for any finite X.
    """
    lo, hi, eps, (mu,) = _first_pass(xp, [X])
    mu_h = to_numpy(mu)
    with np.errstate(over="ignore", invalid="ignore"):
        half = np.maximum(hi * 0.5 - mu_h * 0.5, mu_h * 0.5 - lo * 0.5)
    half = np.clip(np.nan_to_num(half, nan=0.0), 0.0, None)
    scale = 2.0 * _pow2_ceil(half)
    const = constant_mask(lo, hi, eps)
    live = scale[~const]
    g = float(live.max()) if live.size else 1.0
    halve = bool(np.any(half >= _HALVE_AT))
    w = np.where(const, 0.0, (2.0 if halve else 1.0) / g)
    dev = device_of(X)
    Xd = xp.astype(X, xp.float64) if X.dtype != xp.float64 else X
    wv = xp.asarray(w, device=dev)
    Xt = (Xd * 0.5 - mu * 0.5) * wv if halve else (Xd - mu) * wv
    return Xt, g


def iter_pairs(names_a: Iterable[str], names_b: Iterable[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in names_a for b in names_b]
