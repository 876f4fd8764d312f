"""Which reference measure ids (shared/reference) correspond to which nncompare call.

Used by ``test_reference.py``; the table of deliberate differences is in that module's
docstring. Every mapping is keyed by a regular expression over the measure id, so that the
held-back reference cases (same recipes, other seeds/sizes/parameters) are covered too.

A mapping's ``compute`` returns ``{output_key: our value}``; ``""`` stands for an anchor
whose ``outputs`` is a bare scalar. Only the keys we return are compared.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

import nncompare as nc

SCALAR = ""


# ------------------------------------------------------------------ locating ../shared
def shared_dir() -> Path | None:
    """The shared data folder: $NNCOMPARE_SHARED, else <repo>/../shared; None when absent."""
    env = os.environ.get("NNCOMPARE_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def reference_dir() -> Path | None:
    root = shared_dir()
    if root is None or not (root / "reference" / "reference_outputs.json").is_file():
        return None
    return root / "reference"


@cache
def load_reference() -> dict[str, Any] | None:
    """reference_outputs.json with the "nan"/"inf" strings decoded; None when absent."""
    ref = reference_dir()
    if ref is None:
        return None
    return _decode(json.loads((ref / "reference_outputs.json").read_text()))


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    return obj


@cache
def load_case_arrays(input_file: str) -> tuple[np.ndarray, np.ndarray]:
    ref = reference_dir()
    assert ref is not None
    with np.load(ref / input_file) as z:
        return np.asarray(z["X"], dtype=np.float64), np.asarray(z["Y"], dtype=np.float64)


# ------------------------------------------------------------------ inputs with memoised calls
VIEW_CONV = {"flat_image": "flatten", "flat_spatial": "samples"}


class Pair:
    """One (case, view): the arrays as passed to nncompare, plus memoised measure calls.

    For conv views we pass the 4-D arrays with ``conv=`` ("flatten" for ``flat_image``,
    "samples" for ``flat_spatial``), which also exercises the reshape policies; ``X2``/``Y2``
    are the 2-D views for formulas computed here.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, conv: str | None) -> None:
        self.X, self.Y, self.conv = X, Y, conv
        if conv in ("flatten", "samples"):
            self.X2 = np.asarray(nc.reshape_conv(X, conv))
            self.Y2 = np.asarray(nc.reshape_conv(Y, conv))
        else:
            self.X2, self.Y2 = X, Y
        self._memo: dict[Any, Any] = {}

    @property
    def n(self) -> int:
        return int(self.X2.shape[0])

    def call(self, name: str, *, swap: bool = False, **options: Any) -> Any:
        """nc.<name>(X, Y, conv=..., **options), memoised; exceptions are memoised too."""
        key = (name, swap, tuple(sorted(options.items())))
        if key not in self._memo:
            X, Y = (self.Y, self.X) if swap else (self.X, self.Y)
            if self.conv is not None and "conv" not in options:
                options = {**options, "conv": self.conv}
            try:
                self._memo[key] = getattr(nc, name)(X, Y, **options)
            except Exception as exc:
                self._memo[key] = exc
        out = self._memo[key]
        if isinstance(out, Exception):
            raise out
        return out

    def minibatch(self, m: int) -> Any:
        key = ("minibatch", m)
        if key not in self._memo:
            acc = nc.MinibatchCKA(kernel="linear")
            for s in range(0, self.n, m):
                acc.update(self.X2[s : s + m], self.Y2[s : s + m])
            self._memo[key] = acc.compute()
        return self._memo[key]

    @property
    def norms(self) -> tuple[float, float]:
        """Frobenius norms of the column-centred 2-D views."""
        if "norms" not in self._memo:
            Xc = self.X2 - self.X2.mean(0)
            Yc = self.Y2 - self.Y2.mean(0)
            self._memo["norms"] = (float(np.linalg.norm(Xc)), float(np.linalg.norm(Yc)))
        return self._memo["norms"]

    def centred_ranks(self) -> tuple[int, int]:
        if "ranks" not in self._memo:
            self._memo["ranks"] = (
                int(np.linalg.matrix_rank(self.X2 - self.X2.mean(0))),
                int(np.linalg.matrix_rank(self.Y2 - self.Y2.mean(0))),
            )
        return self._memo["ranks"]


@cache
def get_pair(case: str, view: str | None) -> Pair:
    ref = load_reference()
    assert ref is not None
    X, Y = load_case_arrays(ref["cases"][case]["input_file"])
    return Pair(X, Y, VIEW_CONV[view] if view else None)


# ------------------------------------------------------------------ helpers (anchor conventions)
def google_threshold_mean(rho: np.ndarray, threshold: float = 0.98) -> float:
    """google/svcca's ``mean``: mean of rho[:i*], i* the first i with sum(rho[:i]) >= t sum."""
    rho = np.asarray(rho, dtype=np.float64)
    total = rho.sum()
    for i in range(len(rho)):
        if rho[:i].sum() / total >= threshold:
            return float(rho[:i].mean())
    return float(rho.mean())


def netrep_euclidean(pair: Pair, cos: float, *, whitened: bool = False) -> float:
    """netrep's unnormalised Euclidean distance ||Xw Wx - Yw Wy||_F, from our cos θ.

    netrep zero-pads the narrower input to D = max(d1, d2) columns. Without whitening
    (alpha = 1) the norms stay ||Xc||_F, ||Yc||_F. With full whitening (alpha = 0) its
    ``preserve_variance`` rescaling makes ||Xw||² = ||Xc||² rank_x / D (the padded and
    null directions count in its variance budget but carry no data).
    """
    nx, ny = pair.norms
    if whitened:
        rx, ry = pair.centred_ranks()
        D = max(pair.X2.shape[1], pair.Y2.shape[1])
        nx, ny = nx * math.sqrt(rx / D), ny * math.sqrt(ry / D)
    return math.sqrt(max(nx * nx + ny * ny - 2.0 * nx * ny * cos, 0.0))


def sklearn_pca_dims(A: np.ndarray, variance: float) -> int:
    """Kept components of sklearn PCA(n_components=variance): smallest k with ratio > v."""
    s = np.linalg.svd(A - A.mean(0), compute_uv=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    return int(np.searchsorted(ratio, variance, side="right")) + 1


def google_conditioning(scores: np.ndarray, eps: float) -> tuple[int, float]:
    """What google's ``epsilon`` does to one (n, d) input of ``get_cca_similarity``.

    Returns (neurons pruned, smallest eigenvalue of the kept rescaled covariance): google
    divides the covariance by its largest absolute entry, drops neurons whose rescaled
    variance is below ``eps`` and adds ``eps`` I, so the canonical correlations shift by
    about eps / (2 lambda_min) per side.
    """
    C = np.atleast_2d(np.cov(scores, rowvar=False))
    C = C / np.abs(C).max()
    keep = np.diag(C) >= eps
    lam = float(np.linalg.eigvalsh(C[np.ix_(keep, keep)])[0]) if keep.any() else 0.0
    return int((~keep).sum()), lam


def pc_scores(A: np.ndarray, k: int) -> np.ndarray:
    """google tutorial 001: top-k principal component scores of the centred data, (n, k)."""
    U, s, _ = np.linalg.svd(A - A.mean(0), full_matrices=False)
    return U[:, :k] * s[:k]


def _rho(r: Any) -> np.ndarray:
    return np.asarray(r.rho, dtype=np.float64)


def anchor_rho(pair: Pair, rho: np.ndarray) -> np.ndarray:
    """Our k = min(rank_x, rank_y) correlations as the anchors report them: min(d1, d2)
    coefficients, the directions a rank-deficient input lacks appearing as (roundoff) zeros."""
    dmin = min(pair.X2.shape[1], pair.Y2.shape[1], pair.n - 1)
    return np.concatenate([rho, np.zeros(max(dmin - rho.shape[0], 0))])


# ------------------------------------------------------------------ the table
Compute = Callable[[Pair, dict[str, str]], dict[str, Any]]
Ranks = Callable[[Pair, dict[str, str]], tuple[int, int]]


def _data_ranks(pair: Pair, p: dict[str, str]) -> tuple[int, int]:
    return pair.centred_ranks()


def _svcca_ranks(pair: Pair, p: dict[str, str]) -> tuple[int, int]:
    rx, ry = pair.centred_ranks()
    if "k" in p:
        return min(int(p["k"]), rx), min(int(p["k"]), ry)
    v = float(p["var"])
    return min(sklearn_pca_dims(pair.X2, v), rx), min(sklearn_pca_dims(pair.Y2, v), ry)


@dataclass(frozen=True)
class Mapping:
    """Reference ids matching ``pattern`` ↔ our ``compute``, to (rtol, atol) on exact entries.

    ``ranks`` (CCA family only): the dimensions CCA sees, computed here independently of
    nncompare; when rank_x + rank_y > n - 1 some canonical correlations are 1 whatever the
    data, and nncompare must raise ValueError("... trivially perfect ...").
    ``value_range``: where our value must lie when the anchor crashed and we do not.
    ``ridge``: for anchors built on google's ``get_cca_similarity`` with epsilon > 0, the
    google-side inputs (X, Y) and epsilon; the tolerance then grows by the ridge's effect,
    and entries where epsilon pruned neurons are skipped (a different quantity).
    """

    pattern: str
    compute: Compute
    rtol: float
    atol: float
    ours: str
    ranks: Ranks | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    ridge: Callable[[Pair, dict[str, str]], tuple[np.ndarray, np.ndarray, float]] | None = None
    cost: str = "features"  # "features": d×d decompositions; "gram"/"kernel": n×n (RBF: O(n²))
    float32: bool = False  # anchor computes in float32 without centring (torch-cka)
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern))


def _cca(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    r = pair.call("cca")
    rho = anchor_rho(pair, _rho(r))
    return {
        "cca_coef1": rho,
        "mean_all_coefs": float(rho.mean()),
        "sum": float(rho.sum()),
        "mean": google_threshold_mean(rho),  # google's thresholded mean, reproduced from rho
    }


def _cca_anatome(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    rho = anchor_rho(pair, _rho(pair.call("cca")))
    return {"cca_coefs": rho, "mean": float(rho.mean())}


def _cca_value(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: float(anchor_rho(pair, _rho(pair.call("cca"))).mean())}


def _ridge_inputs(policy: str | None = None, default_eps: float = 1e-10) -> Callable[..., Any]:
    """google-side inputs of a CCA on the (2-D or conv-reshaped) data, with its epsilon."""

    def f(pair: Pair, p: dict[str, str]) -> tuple[np.ndarray, np.ndarray, float]:
        eps = float(p.get("eps", default_eps))
        if policy is None:
            return pair.X2, pair.Y2, eps
        X, Y = (np.asarray(nc.reshape_conv(A, policy)) for A in (pair.X, pair.Y))
        return X, Y, eps

    return f


def _ridge_pcs(pair: Pair, p: dict[str, str]) -> tuple[np.ndarray, np.ndarray, float]:
    """google tutorial SVCCA: get_cca_similarity(epsilon=1e-10) on the top-k PC scores."""
    k = int(p["k"])
    return pc_scores(pair.X2, k), pc_scores(pair.Y2, k), 1e-10


def _svcca_keep(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    r = pair.call("svcca", dims=int(p["k"]))
    return {"svcca_mean": float(r), "cca_coef1": _rho(r), SCALAR: float(r)}


def _svcca_var(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: float(pair.call("svcca", variance=float(p["var"])))}


def _pwcca_google(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    eps = float(p.get("eps", 0.0))
    r = pair.call("pwcca", swap=p.get("dir") == "yx", convention="google", epsilon=eps)
    return {
        "pwcca_mean": float(r),
        SCALAR: float(r),
        "coefs": np.asarray(r.rho),
        "weights": np.asarray(r.weights),
    }


def _procrustes_angular(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: pair.call("procrustes").angular}


def _procrustes_euclidean(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: netrep_euclidean(pair, float(pair.call("procrustes")))}


def _procrustes_sq(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: netrep_euclidean(pair, float(pair.call("procrustes"))) ** 2}


GRAM_COVARIANCE_MAX_N = 256  # n×n eigen-decompositions of the Gram matrices beyond: formula


def _gram_covariance(pair: Pair, name: str) -> float:
    """nc.<name> (a covariance measure) applied to the centred Gram matrices Xc Xcᵀ, Yc Ycᵀ."""
    key = ("gram_cov", name)
    if key not in pair._memo:
        Xc = pair.X2 - pair.X2.mean(0)
        Yc = pair.Y2 - pair.Y2.mean(0)
        pair._memo[key] = float(getattr(nc, name)(Xc @ Xc.T, Yc @ Yc.T))
    return pair._memo[key]


def _bures_gram(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    """Bures distance of the centred Grams (= netrep's Procrustes euclidean distance)."""
    if pair.n <= GRAM_COVARIANCE_MAX_N:
        return {SCALAR: _gram_covariance(pair, "bures_wasserstein")}
    return _procrustes_euclidean(pair, p)


def _nbs(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    """Normalised Bures similarity = cos of the Procrustes angle = covariance cosine of Grams."""
    if pair.n <= GRAM_COVARIANCE_MAX_N:
        return {SCALAR: _gram_covariance(pair, "covariance_cosine")}
    return {SCALAR: float(pair.call("procrustes"))}


def _anatome_procrustes(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: 1.0 - float(pair.call("procrustes"))}


def _shape0_angular(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: pair.call("shape", alpha=0.0).angular}


def _shape0_euclidean(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: netrep_euclidean(pair, float(pair.call("shape", alpha=0.0)), whitened=True)}


def _cka(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    debiased = p.get("debiased", "False") == "True"
    return {SCALAR: float(pair.call("cka_debiased" if debiased else "cka"))}


def _cka_angular(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: pair.call("cka").angular}


def _anatome_cka(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    debiased = p["rb"] == "True"
    return {SCALAR: 1.0 - float(pair.call("cka_debiased" if debiased else "cka"))}


def _cka_rbf(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    r = pair.call("cka_rbf", threshold=float(p["t"]), debiased=p.get("debiased") == "True")
    return {SCALAR: float(r)}


def _kornblith_vendored(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {
        "linear": float(pair.call("cka")),
        "linear_debiased": float(pair.call("cka_debiased")),
        "rbf0.5": float(pair.call("cka_rbf", threshold=0.5, debiased=False)),
        "rbf0.5_debiased": float(pair.call("cka_rbf", threshold=0.5, debiased=True)),
    }


def _minibatch(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    return {SCALAR: float(pair.minibatch(int(p["m"])))}


def _cca_r2(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    r = pair.call("cca_r2")
    rho = anchor_rho(pair, _rho(r))
    # Kornblith divides by min(d1, d2); we divide by k (equal at full rank)
    return {SCALAR: float(r) if rho.shape[0] == _rho(r).shape[0] else float(np.mean(rho**2))}


def _dft(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
    r = pair.call("cca", conv="dft")
    rho = np.asarray(r.rho_per_frequency)
    k = np.asarray(r.k_per_frequency)
    per_loc = np.array([google_threshold_mean(rho[i][: k[i]]) for i in np.ndindex(*k.shape)])
    return {
        "mean_of_all_coefs": float(r),
        "cca_coef1_per_location": rho,
        "mean_per_location": per_loc.reshape(k.shape),
        "mean_of_location_means": float(per_loc.mean()),
    }


def _cca_conv(policy: str) -> Compute:
    def compute(pair: Pair, p: dict[str, str]) -> dict[str, Any]:
        r = pair.call("cca", conv=policy)
        return {"cca_coef1": _rho(r), "mean_all_coefs": float(r), "sum": float(_rho(r).sum())}

    return compute


EPS = r"(?P<eps>[0-9.e+-]+)"
CCA_TOL = (1e-7, 1e-7)  # canonical correlation vectors (README: 1e-7, abs 1e-7 near 0)
GOOGLE_RIDGE_TOL = (1e-6, 1e-6)  # google epsilon = 1e-10 ridge

MAPPINGS: list[Mapping] = [
    # ---- CCA: google (epsilon 0 / unpruned 1e-10), anatome, similarity-repository
    Mapping(r"google_svcca\.cca\.eps=0", _cca, *CCA_TOL, "nc.cca", ranks=_data_ranks),
    Mapping(
        r"google_svcca\.cca\.eps=1e-10",
        _cca,
        *GOOGLE_RIDGE_TOL,
        "nc.cca (google ridge 1e-10; only when no neuron was pruned)",
        ranks=_data_ranks,
        ridge=_ridge_inputs(),
    ),
    Mapping(r"anatome\.cca\.(svd|qr)", _cca_anatome, *CCA_TOL, "nc.cca", ranks=_data_ranks),
    Mapping(
        r"simrepo\.(svcca|sim_metric)/cca-score",
        _cca_value,
        1e-9,
        1e-9,
        "nc.cca",
        ranks=_data_ranks,
    ),
    Mapping(
        r"simrepo\.contrasim/svcca-score",
        _cca_value,
        *GOOGLE_RIDGE_TOL,
        "nc.cca (contrasim keeps all directions; 1e-10 ridge)",
        ranks=_data_ranks,
        ridge=_ridge_inputs(),
    ),
    Mapping(r"kornblith\.r2_cca", _cca_r2, 1e-8, 1e-10, "nc.cca_r2", ranks=_data_ranks),
    Mapping(
        r"simrepo\.representation_similarity/cca-squared_score",
        _cca_r2,
        1e-8,
        1e-10,
        "nc.cca_r2",
        ranks=_data_ranks,
    ),
    # ---- SVCCA
    Mapping(
        r"google_svcca\.svcca_tutorial\.keep=(?P<k>\d+)",
        _svcca_keep,
        1e-5,
        1e-6,
        "nc.svcca(dims=k) (google adds a 1e-10 ridge)",
        ranks=_svcca_ranks,
        ridge=_ridge_pcs,
    ),
    Mapping(
        r"simrepo\.svcca/svcca-dim=(?P<k>\d+)-score",
        _svcca_keep,
        1e-5,
        1e-6,
        "nc.svcca(dims=k)",
        ranks=_svcca_ranks,
    ),
    Mapping(
        r"simrepo\.svcca/svcca-var=(?P<var>[0-9.]+)-score",
        _svcca_var,
        1e-9,
        1e-9,
        "nc.svcca(variance=v)",
        ranks=_svcca_ranks,
    ),
    # ---- PWCCA (google convention; "yx" = arguments swapped)
    Mapping(
        rf"google_svcca\.pwcca\.(?P<dir>xy|yx)\.eps={EPS}",
        _pwcca_google,
        1e-6,
        1e-7,
        "nc.pwcca(convention='google', epsilon=eps)",
        ranks=_data_ranks,
    ),
    Mapping(
        r"simrepo\.svcca/pwcca-score",
        _pwcca_google,
        1e-6,
        1e-7,
        "nc.pwcca(convention='google', epsilon=0)",
        ranks=_data_ranks,
    ),
    # ---- Procrustes / shape metrics (netrep, anatome, similarity-repository)
    Mapping(
        r"(netrep\.linear\.procrustes|simrepo\.netrep/procrustes-distance=angular)(\.angular)?",
        _procrustes_angular,
        1e-7,
        1e-6,
        "nc.procrustes().angular",
    ),
    Mapping(
        r"netrep\.linear\.procrustes\.euclidean",
        _procrustes_euclidean,
        1e-7,
        1e-6,
        "sqrt(|Xc|² + |Yc|² - 2 nc.procrustes() |Xc||Yc|)",
    ),
    Mapping(
        r"simrepo\.(sim_metric|survey_measures)/procrustes-distance=squared_euclidean",
        _procrustes_sq,
        1e-7,
        1e-6,
        "|Xc|² + |Yc|² - 2 nc.procrustes() |Xc||Yc|",
    ),
    Mapping(
        r"simrepo\.nn_similarity_index/bures_distance",
        _bures_gram,
        1e-6,
        1e-6,
        "nc.bures_wasserstein(Xc Xcᵀ, Yc Ycᵀ) (n <= 256; else the Procrustes formula)",
    ),
    Mapping(
        r"simrepo\.nn_similarity_index/nbs-score",
        _nbs,
        1e-6,
        1e-9,
        "nc.covariance_cosine(Xc Xcᵀ, Yc Ycᵀ) (n <= 256), else nc.procrustes() value",
    ),
    Mapping(
        r"anatome\.orthogonal_procrustes",
        _anatome_procrustes,
        1e-9,
        1e-9,
        "1 - nc.procrustes()",
    ),
    Mapping(
        r"(netrep\.linear\.cca|simrepo\.netrep/cca-distance=angular)(\.angular)?",
        _shape0_angular,
        1e-7,
        1e-6,
        "nc.shape(alpha=0).angular",
        value_range=(0.0, math.pi / 2),
    ),
    Mapping(
        r"netrep\.linear\.cca\.euclidean",
        _shape0_euclidean,
        1e-7,
        1e-6,
        "netrep euclidean formula with nc.shape(alpha=0)",
        value_range=(0.0, math.inf),
    ),
    # ---- CKA
    Mapping(
        r"kornblith\.linear_cka\.(feature|gram)\.debiased=(?P<debiased>True|False)",
        _cka,
        1e-9,
        1e-12,
        "nc.cka / nc.cka_debiased",
        cost="gram",
    ),
    Mapping(
        r"ckatorch\.cka_base\.linear\.unbiased=(?P<debiased>True|False)\.method=fro_norm",
        _cka,
        1e-9,
        1e-12,
        "nc.cka / nc.cka_debiased",
        cost="gram",
    ),
    Mapping(
        r"ckatorch\.cka_base\.linear\.unbiased=(True|False)\.method=hsic",
        _cka,
        1e-9,
        1e-12,
        "nc.cka (ckatorch's hsic method ignores unbiased)",
        cost="gram",
    ),
    Mapping(
        r"simrepo\.representation_similarity/cka-kernel=linear-hsic=gretton-score",
        _cka,
        1e-9,
        1e-12,
        "nc.cka",
        cost="gram",
    ),
    Mapping(
        r"simrepo\.representation_similarity/cka-kernel=linear-hsic=song-score",
        lambda pair, p: _cka(pair, {"debiased": "True"}),
        1e-9,
        1e-12,
        "nc.cka_debiased",
        cost="gram",
    ),
    Mapping(
        r"anatome\.linear_cka\.reduce_bias=(?P<rb>True|False)",
        _anatome_cka,
        1e-7,
        1e-9,
        "1 - nc.cka / 1 - nc.cka_debiased",
        cost="gram",
        value_range=(0.0, 2.0),
    ),
    Mapping(
        r"netrep\.linear_cka\.angular", _cka_angular, 1e-7, 1e-6, "nc.cka().angular", cost="gram"
    ),
    Mapping(
        r"kornblith\.rbf_cka\.threshold=(?P<t>[0-9.]+)\.debiased=(?P<debiased>True|False)",
        _cka_rbf,
        1e-8,
        1e-12,
        "nc.cka_rbf(threshold=t, debiased=b)",
        cost="kernel",
    ),
    Mapping(
        r"ckatorch\.cka_base\.rbf\.threshold=(?P<t>[0-9.]+)\.unbiased=(?P<debiased>True|False)"
        r"\.method=fro_norm",
        _cka_rbf,
        1e-4,
        1e-9,
        "nc.cka_rbf (torch.median lower-middle vs numpy median)",
        cost="kernel",
    ),
    Mapping(
        r"kornblith_vendored\.feature_space_linear_cka",
        _kornblith_vendored,
        1e-8,
        1e-12,
        "nc.cka / cka_debiased / cka_rbf(0.5[, debiased])",
        cost="kernel",
    ),
    Mapping(
        r"ckatorch\.cka_batch\.mb=(?P<m>\d+)",
        _minibatch,
        1e-9,
        1e-12,
        "nc.MinibatchCKA('linear') over consecutive blocks of m rows",
        cost="gram",
    ),
    Mapping(
        r"torch_cka\.minibatch\.bs=(?P<m>\d+)",
        _minibatch,
        1e-4,
        1e-6,
        "nc.MinibatchCKA('linear') (torch-cka is float32 without centring)",
        cost="gram",
        float32=True,
    ),
    Mapping(
        r"torch_cka\.single_batch",
        lambda pair, p: _cka(pair, {"debiased": "True"}),
        1e-4,
        1e-6,
        "nc.cka_debiased (torch-cka is float32 without centring)",
        cost="gram",
        float32=True,
    ),
    # ---- conv cases
    Mapping(r"google_svcca\.fourier_ccas\.complex128", _dft, 1e-9, 1e-9, "nc.cca(conv='dft')"),
    Mapping(r"google_svcca\.fourier_ccas\.complex64", _dft, 1e-6, 1e-6, "nc.cca(conv='dft')"),
    Mapping(
        rf"google_svcca\.avgpool\.cca\.eps={EPS}",
        _cca_conv("mean"),
        *GOOGLE_RIDGE_TOL,
        "nc.cca(conv='mean')",
        ridge=_ridge_inputs("mean"),
    ),
    Mapping(
        rf"google_svcca\.flatten_spatial\.cca\.eps={EPS}",
        _cca_conv("samples"),
        *GOOGLE_RIDGE_TOL,
        "nc.cca(conv='samples')",
        ridge=_ridge_inputs("samples"),
    ),
]

# Reference ids deliberately left unmapped, with the reason (see test_reference's docstring).
UNMAPPED: dict[str, str] = {
    r"google_svcca\.cca\.eps=1e-0[0-9]": "epsilon >= 1e-9 ridge/pruning shifts values visibly",
    r"netrep\.linear\.alpha=0\.5\.(angular|euclidean)": "netrep whitens the unnormalised XᵀX",
    r"netrep\.permutation\.angular": "no permutation metric in nncompare",
    r"anatome\.svcca\.accept=[0-9.]+": "uncentred, singular-value-sum selection",
    r"anatome\.pwcca\.(xy|yx)\.(svd|qr)": "weights over datapoints with uncentred x",
    r"simrepo\.sim_metric/pwcca-distance=one_minus_score": "Ding et al. per-neuron weighting",
    r"simrepo\.rtd/svcca-score": "centres each datapoint across neurons (wrong axis)",
    r"simrepo\.ensd/ensd": "effective number of shared dimensions: not implemented",
}


def find_mapping(measure_id: str) -> tuple[Mapping, dict[str, str]] | None:
    for m in MAPPINGS:
        match = m.compiled.fullmatch(measure_id)
        if match:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            return m, params
    return None


def unmapped_reason(measure_id: str) -> str | None:
    for pattern, reason in UNMAPPED.items():
        if re.fullmatch(pattern, measure_id):
            return reason
    return None


def iter_entries(ref: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """Every (case, view, measure_id) of the reference file, views included."""
    out = []
    for case, c in ref["cases"].items():
        for mid in c["measures"]:
            out.append((case, None, mid))
        for view, v in c.get("views", {}).items():
            for mid in v["measures"]:
                out.append((case, view, mid))
    return out


def get_entry(case: str, view: str | None, measure_id: str) -> dict[str, Any]:
    ref = load_reference()
    assert ref is not None
    c = ref["cases"][case]
    block = c["views"][view] if view else c
    return block["measures"][measure_id]
