"""Streaming per-frequency moments of convolutional activations for the exact DFT path.

:class:`SpectralMoments` accumulates, batch by batch, what :func:`nncompare.measures.conv.
dft_cca_from_comoments` needs; it lives beside the DFT code whose internals (frequency
plan, spectra, noise floors) it shares. Exposed as ``nncompare.SpectralMoments``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, device_of, harmonize, namespace
from nncompare.measures.conv import (
    _PRESCALE_EXP,
    _RUN_MAX,
    _blas_single_threaded,
    _centred_run,
    _evaluate,
    _frequency_plan,
    _gemm_suits,
    _joint_comoments,
    _OutOfSingleRange,
    _RawSums,
    _run_sums,
    _scan,
    _single_safe,
    _Source,
    _units,
    _Workspace,
    zero_rounding_level,
)
from nncompare.results import DFTCCAResult
from nncompare.stats import _Block, _xp_from_name, _xp_name, check_precision, product_dtype

__all__ = ["SpectralMoments"]


class SpectralMoments:
    """Joint per-frequency moments of convolutional activations, for the exact DFT path.

    Each batch of channels-last activations (b, *spatial, c) is transformed by a unitary
    DFT over the spatial axes and cropped to the common frequency grid ``spatial`` (the
    frequencies -h/2 ≤ f < h/2 of each axis, see :func:`nncompare.measures.conv.dft_cca`);
    the accumulator keeps, for every kept frequency f, the complex means and centred
    co-moments of all layers jointly: ``comoment[f] = Σ_s (z_sf - z̄_f)ᴴ (z_sf - z̄_f)``.
    The inputs are real, so the moments at -f are the conjugates of those at f: only one
    frequency of each such pair is kept (``frequencies``, shape (R, n_spatial), signed;
    ``comoment`` (R, D, D), ``mean`` (R, D)), and :meth:`pair` fills in the grid. On an
    axis where every layer has exactly the grid's size t, -t/2 and t/2 are one frequency
    and pair up as in :func:`~nncompare.measures.conv.dft_cca`; a later batch with a
    larger layer there switches, exactly, to pairs without wrap-around (the added
    frequencies' moments are conjugates of kept ones). :meth:`dft_cca` evaluates a pair
    of layers at the kept frequencies directly. Each
    batch costs one real FFT per layer and, per kept frequency, one real symmetric product
    of the centred spectra (see :func:`nncompare.measures.conv.dft_cca`). Memory is
    O(R·D²), independent of the number of samples; merging is exact (Chan et al. 1979,
    with conjugates). Consecutive float64 numpy batches of at most 1023 samples in all
    share one shift (the first sample's spectra) and are summed before they are centred
    and merged, on first use of ``mean`` or ``comoment`` (or when the run is full): the
    correction then loses at most 10 bits, as in :func:`nncompare.measures.conv.dft_cca`.
    Vector layers (b, d) count as spatial size 1, whose only frequency
    (0) is the spatial mean.

    Each layer's spectra are kept in units of a power of two near the layer's largest
    magnitude (rescaled exactly when a later batch is larger), so data anywhere in float64's
    range accumulate without over- or underflow; ``comoment`` and ``mean`` are in those units
    (``magnitude[name]`` is a power of two at least the largest magnitude seen: the one
    just above it when the data lie beyond 2^±190, see ``conv._scan`` and ``conv._units``;
    inside that range the units are 1 and a bound from one pass suffices). Coefficients
    whose variance is rounding noise (constant channels, fixed spatial patterns) are zeroed
    by :meth:`pair`.

    Parameters
    ----------
    spatial : tuple of int
        The common frequency grid; every layer must be at least this large on each axis.
    precision : {"auto", "float32", "float64"}
        Precision of each batch's spectra and products (numpy batches): "auto" takes
        float32 for float32 batches (see :func:`nncompare.measures.conv.dft_cca`); the
        sums over batches, the merges and everything after are float64 either way.
    """

    def __init__(self, spatial: tuple[int, ...], *, precision: str = "auto") -> None:
        self.spatial = tuple(int(s) for s in spatial)
        self.precision = check_precision(precision)
        self.n = 0
        self.blocks: dict[str, _Block] = {}
        self._mean: Array | None = None
        self._comoment: Array | None = None
        self._n_merged = 0  # samples in _mean and _comoment; the rest are in _run
        self._run: _RawSums | None = None
        self.magnitude: dict[str, float] = {}
        self._floor: dict[str, Array] = {}
        self._xp: Any = None
        self._workspace: _Workspace | None = None
        self._sizes: dict[str, tuple[int, ...]] = {}  # each layer's spatial size
        # pairs {f, -f} only where -f is itself a kept frequency (no wrap-around at -t/2):
        # valid whatever spatial sizes (>= the grid) the batches bring. The first batch may
        # narrow it (see _choose_plan)
        self._plan = _frequency_plan(self.spatial, conjugate=True)
        self._periodic = (False,) * len(self.spatial)

    def __getstate__(self) -> dict[str, Any]:
        self._fold()
        return {**self.__dict__, "_xp": _xp_name(self._xp), "_workspace": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "mean" in state:  # earlier versions: merged after every batch
            state["_mean"], state["_comoment"] = state.pop("mean"), state.pop("comoment")
            state["_n_merged"] = state["n"]
        self.__dict__.update(state, _xp=_xp_from_name(state.get("_xp")))
        self.__dict__.setdefault("_workspace", None)
        self.__dict__.setdefault("_run", None)
        self.__dict__.setdefault("_sizes", {})
        self.__dict__.setdefault("_periodic", (False,) * len(state["spatial"]))
        self.__dict__.setdefault("precision", "float64")  # what earlier versions formed

    @property
    def mean(self) -> Array | None:
        """Complex means (R, D) of the kept frequencies (None before the first batch)."""
        self._fold()
        return self._mean

    @property
    def comoment(self) -> Array | None:
        """Centred complex co-moments (R, D, D) of the kept frequencies."""
        self._fold()
        return self._comoment

    def _fold(self) -> None:
        """Centre the pending run of batches and merge it into the moments."""
        if self._run is not None:
            run, self._run = self._run, None
            mu, com = _centred_run(run)
            self._merge(mu, com, run.n)

    def _merge(self, mu: Array, com: Array, nb: int) -> None:
        """Merge the means and centred co-moments of nb further samples (same units)."""
        if self._n_merged == 0:
            self._mean, self._comoment, self._n_merged = mu, com, nb
            return
        xp = self._xp
        na = self._n_merged
        n = na + nb
        delta = mu - self._mean
        self._mean = self._mean + delta * (nb / n)
        if isinstance(self._comoment, np.ndarray):  # in place, block by block (in cache)
            w = na * nb / n
            for acc, add, d in zip(self._comoment, com, delta, strict=True):
                acc += add
                acc += (w * np.conj(d))[:, None] * d[None, :]
        else:
            self._comoment = (
                self._comoment
                + com
                + (na * nb / n) * (xp.conj(delta)[:, :, None] * delta[:, None, :])
            )
        self._n_merged = n

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    @property
    def frequencies(self) -> np.ndarray:
        """The signed frequencies (R, n_spatial) whose moments are kept (one per pair ±f)."""
        return self._plan.reps

    def __repr__(self) -> str:
        return f"SpectralMoments(n={self.n}, spatial={self.spatial}, blocks={list(self.blocks)})"

    def _as_conv(self, xp: Any, name: str, a: Array) -> Array:
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
        return a

    def update(self, batches: Mapping[str, Any]) -> SpectralMoments:
        """Add a batch: ``name -> (b, *spatial, c)`` channels-last activations (or (b, d)).

        A batch of zero samples is a no-op.
        """
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
        xp = namespace(*arrays.values())
        arrays = {k: self._as_conv(xp, k, a) for k, a in arrays.items()}
        widths = {k: int(a.shape[-1]) for k, a in arrays.items()}
        if self.blocks and (
            names != list(self.blocks) or any(widths[k] != self.blocks[k].dim for k in names)
        ):
            raise ValueError(
                "batch layout differs from earlier batches: expected layers (channels) "
                f"{ {k: b.dim for k, b in self.blocks.items()} }, got {widths}. "
                "Feed the same layers, in the same order, with the same channel counts."
            )
        if sizes[names[0]] == 0:
            return self
        # validation, magnitude and noise floor in one pass per layer where possible
        scans = {k: _scan(xp, a, f"batch {k!r}") for k, a in arrays.items()}
        if not self.blocks:
            start = 0
            for k in names:
                self.blocks[k] = _Block(k, start, start + widths[k])
                start += widths[k]
        for k, a in arrays.items():  # the largest size seen (a layer's size may vary)
            size = tuple(int(v) for v in a.shape[1:-1])
            old = self._sizes.get(k, size)
            self._sizes[k] = tuple(max(u, v) for u, v in zip(old, size, strict=True))
        # one power-of-two unit per layer, never decreasing: the largest magnitude seen
        new_unit = {k: max(self.magnitude.get(k, 0.0), scans[k][0]) for k in names}
        floors = {  # in the units of new_unit (the ratio of two powers of two is exact)
            k: scans[k][2] * (_units(new_unit[k]) / scans[k][1]) ** 2 for k in names
        }
        sources = []
        for k in names:
            u = _units(new_unit[k])
            big = u != 1.0 and int(np.frexp(new_unit[k])[1]) > _PRESCALE_EXP
            sources.append(_Source(arrays[k], u, big))
        if self._workspace is None:  # scratch reused from batch to batch (not pickled)
            self._workspace = _Workspace()
        single = (
            all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays.values())
            and product_dtype(np, arrays.values(), self.precision) == np.float32
            and all(s.units == 1.0 for s in sources)
            and all(_gemm_suits(a) or _single_safe(a) for a in arrays.values())
        )
        nb = sizes[names[0]]
        # float64 numpy batches join the pending run of batches, which shares one shift,
        # while their layout and units are those of the run and it stays within _RUN_MAX
        runnable = (
            not single
            and nb <= _RUN_MAX
            and all(isinstance(a, np.ndarray) for a in arrays.values())
        )
        key = tuple(
            (tuple(a.shape[1:]), str(a.dtype), s.units)
            for a, s in zip(arrays.values(), sources, strict=True)
        )
        run = self._run
        if run is not None and not (runnable and run.takes(key, nb)):
            self._fold()  # in the old units, before they change
            run = None
        if self.n == 0:
            self._xp = xp
        else:
            self._rescale(names, new_unit)
        self._choose_plan(arrays)
        if runnable:
            self._run = _run_sums(
                sources, self._plan, half=True, workspace=self._workspace, run=run, key=key
            )
        else:
            try:
                mu, com = _joint_comoments(  # (R, D), (R, D, D)
                    xp, sources, self._plan, half=True, workspace=self._workspace, single=single
                )
            except _OutOfSingleRange:  # a channel beyond float32's safe range: float64
                mu, com = _joint_comoments(
                    xp, sources, self._plan, half=True, workspace=self._workspace
                )
            self._merge(mu, com, nb)
        for k in names:
            self._floor[k] = self._floor[k] + floors[k] if k in self._floor else floors[k]
        self.magnitude = new_unit
        self.n += nb
        return self

    def _choose_plan(self, arrays: Mapping[str, Array]) -> None:
        """Pair the frequencies -t/2 and t/2 (the same frequency on an axis where every
        layer has exactly the grid's size t: fewer to keep, as in ``dft_cca``) while every
        batch allows it; when a batch brings a larger layer, switch to pairs without
        wrap-around, exactly: the moments the wider plan adds are the conjugates of moments
        already kept (the pending run, whose key differs, was merged first)."""
        periodic = tuple(
            all(int(a.shape[1 + i]) == t for a in arrays.values())
            for i, t in enumerate(self.spatial)
        )
        if self.n == 0:
            self._periodic = periodic
            self._plan = _frequency_plan(self.spatial, conjugate=True, periodic=periodic)
            return
        now = self._periodic
        wider = tuple(p and q for p, q in zip(now, periodic, strict=True))
        if wider == now:
            return
        self._fold()
        plan = _frequency_plan(self.spatial, conjugate=True, periodic=wider)
        if self._n_merged:
            xp, old = self._xp, self._plan
            dev = device_of(self._comoment)
            src = xp.asarray(old.source[plan.rep_flat], device=dev)
            flip = xp.asarray(old.conj[plan.rep_flat], device=dev)
            mean = xp.take(self._mean, src, axis=0)
            com = xp.take(self._comoment, src, axis=0)
            self._mean = xp.where(flip[:, None], xp.conj(mean), mean)
            self._comoment = xp.where(flip[:, None, None], xp.conj(com), com)
        self._periodic, self._plan = wider, plan

    def _rescale(self, names: list[str], new_unit: dict[str, float]) -> None:
        """Bring the merged sums and floors to the new units (exact: the ratios are powers
        of two); the pending run, if any, shares its units with the batch."""
        ratio = np.concatenate(
            [
                np.full(self.blocks[k].dim, _units(new_unit[k]) / _units(self.magnitude[k]))
                for k in names
            ]
        )
        if bool(np.all(ratio == 1.0)):
            return
        for k in names:
            self._floor[k] = self._floor[k] * float(ratio[self.blocks[k].start]) ** 2
        if self._n_merged:
            r = self._xp.asarray(ratio, device=device_of(self._comoment))
            self._mean = self._mean * r
            self._comoment = self._comoment * r[:, None] * r[None, :]

    def _kept(self, a: str, b: str) -> tuple[Array, Array, Array]:
        """(Cxx, Cyy, Cxy) of layers a and b at the kept frequencies, (R, d, d') etc.,
        with the coefficients whose variance is rounding noise zeroed."""
        for k in (a, b):
            if k not in self.blocks:
                raise KeyError(f"no layer {k!r} in this accumulator; it holds {self.names}.")
        ba, bb = self.blocks[a], self.blocks[b]
        sa, sb = slice(ba.start, ba.stop), slice(bb.start, bb.stop)
        C = self.comoment  # centres and merges the pending run first
        return zero_rounding_level(
            self._xp, C[:, sa, sa], C[:, sb, sb], C[:, sa, sb], self._floor[a], self._floor[b]
        )

    def dft_cca(
        self,
        a: str,
        b: str,
        *,
        rtol: float | None = None,
        variance: float | None = None,
        dims: int | tuple[int, int] | None = None,
    ) -> DFTCCAResult:
        """DFT CCA (SVCCA when ``variance`` or ``dims`` is given) of layers ``a`` and ``b``.

        The same value as :func:`nncompare.measures.conv.dft_cca` on all the samples fed
        (up to the order of the sums), evaluated at the kept frequencies directly: each
        conjugate pair ±f is decomposed once, and nothing is expanded to the whole grid
        (``dft_cca_from_comoments(*self.pair(a, b), ...)`` gives the same numbers, slower).

        Parameters
        ----------
        a, b : str
            Layer names, as fed to :meth:`update`.
        rtol : float, optional
            Relative rank cut-off of the whitening (default 1e-10, as for ``nc.cca``).
        variance : float in (0, 1], optional
            SVCCA: keep the principal directions (over all frequencies jointly) that
            explain more than this fraction of the variance.
        dims : int or (int, int), optional
            SVCCA: keep this many principal directions per side instead.

        Returns
        -------
        DFTCCAResult
        """
        from nncompare.measures._linalg import DEFAULT_RTOL
        from nncompare.measures._registry import get as get_measure

        svd = variance is not None or dims is not None
        opts: dict[str, Any] = {} if rtol is None else {"rtol": rtol}
        if svd:
            opts.update(variance=variance, dims=dims)
        get_measure("svcca" if svd else "cca").check_options(opts)
        pair_dims = None
        if dims is not None:
            pair_dims = (
                (int(dims[0]), int(dims[1]))
                if isinstance(dims, tuple | list)
                else (
                    int(dims),
                    int(dims),
                )
            )
        Cxx, Cyy, Cxy = self._kept(a, b)
        with _blas_single_threaded() if isinstance(Cxx, np.ndarray) else contextlib.nullcontext():
            return _evaluate(
                self._xp,
                Cxx,
                Cyy,
                Cxy,
                self.n,
                self._plan,
                rtol=DEFAULT_RTOL if rtol is None else float(rtol),
                variance=None if variance is None else float(variance),
                dims=pair_dims,
                resized=self._sizes.get(a) != self._sizes.get(b),
            )

    def pair(self, a: str, b: str) -> tuple[Array, Array, Array]:
        """Per-frequency (Cxx, Cyy, Cxy) of layers ``a`` and ``b``, each (F, d, d') over the
        whole grid (F = prod(spatial); the partner -f of a kept frequency f gets the
        conjugates of its moments, bit for bit), with the coefficients whose variance is
        rounding noise zeroed (see ``zero_rounding_level``)."""
        for k in (a, b):
            if k not in self.blocks:
                raise KeyError(f"no layer {k!r} in this accumulator; it holds {self.names}.")
        xp = self._xp
        ba, bb = self.blocks[a], self.blocks[b]
        sa, sb = slice(ba.start, ba.stop), slice(bb.start, bb.stop)
        C = self.comoment  # centres and merges the pending run first
        dev = device_of(C)
        src = xp.asarray(self._plan.source, device=dev)
        flip = xp.asarray(self._plan.conj, device=dev)[:, None, None]
        any_flip = bool(self._plan.conj.any())

        def grid(block: Array) -> Array:
            full = xp.take(block, src, axis=0)
            return xp.where(flip, xp.conj(full), full) if any_flip else full

        return zero_rounding_level(
            xp,
            grid(C[:, sa, sa]),
            grid(C[:, sb, sb]),
            grid(C[:, sa, sb]),
            self._floor[a],
            self._floor[b],
        )
