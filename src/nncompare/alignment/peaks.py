"""The peaks-function benchmark of related and unrelated tasks (Caruana 1997; Imani et al. §7.1).

A peaks function P_{X,Y,Z} ≐ IF X > 0.5 THEN Y ELSE Z reads three of six variables
A … F, each uniform on [0, 1); the ordered choices of three distinct variables give the
120 tasks (:func:`tasks`). Each variable is encoded by 10 Gaussian RBF features centred at
0.0, 0.1, …, 0.9 with height 0.5 and standard deviation 0.1 (60 features), every input
row is then normalised to length one, and labels are centred to mean zero (:func:`encode`,
:func:`dataset`).

For a source task S, a *related* task uses the same three variables in another order and an
*unrelated* task the other three variables (:func:`triple`, :func:`related`,
:func:`unrelated`). The network is 60-60-1 with a ReLU hidden layer and a linear output
(:func:`network`; ``hidden_layers=3`` for the deeper variant of Fig. 12), trained on the
source task with mean squared error and Adam (batch 64, step size 0.001; :func:`train`).

* :func:`transfer_experiment` — alignment of the source, related and unrelated task labels
  with the original features, the hidden representation at initialisation and after
  training on the source (Fig. 10; per hidden layer for the deeper network, Fig. 12).
* :func:`linear_transfer` — linear models trained by gradient descent on 100 samples of the
  related and unrelated task on each representation: train and test error and weight norm
  over the steps (Fig. 11).
* :func:`summary` — means and standard errors over seeds at chosen thresholds.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._validation import check_option, check_positive_int
from nncompare.alignment._core import _check_taus, curve
from nncompare.errors import RankDeficiencyWarning

__all__ = [
    "CENTRES",
    "HEIGHT",
    "REPRESENTATIONS",
    "ROLES",
    "VARIABLES",
    "WIDTH",
    "PeaksTask",
    "dataset",
    "encode",
    "hidden",
    "linear_transfer",
    "network",
    "related",
    "sample",
    "summary",
    "task",
    "tasks",
    "train",
    "transfer_experiment",
    "triple",
    "unrelated",
]

VARIABLES = ("A", "B", "C", "D", "E", "F")
CENTRES = tuple(i / 10 for i in range(10))
HEIGHT = 0.5
WIDTH = 0.1  # standard deviation of each RBF
ROLES = ("source", "related", "unrelated")
REPRESENTATIONS = ("original", "init", "transfer")


@dataclass(frozen=True)
class PeaksTask:
    """P_{x,y,z}: the label is variable ``y`` where variable ``x`` > 0.5, else variable ``z``."""

    x: str
    y: str
    z: str

    def __post_init__(self) -> None:
        vs = (self.x, self.y, self.z)
        if any(v not in VARIABLES for v in vs) or len(set(vs)) != 3:
            raise ValueError(
                f"a peaks task reads three distinct variables out of {''.join(VARIABLES)}; got "
                f"{vs}."
            )

    @property
    def variables(self) -> tuple[str, str, str]:
        """(X, Y, Z), in the order of the definition."""
        return (self.x, self.y, self.z)

    @property
    def name(self) -> str:
        return f"P_{{{self.x},{self.y},{self.z}}}"

    @property
    def short(self) -> str:
        return f"{self.x}{self.y}{self.z}"

    def labels(self, values: Any) -> np.ndarray:
        """Labels (not centred) of the raw variable values ``values`` (n, 6), columns A … F."""
        v = _check_values(values)
        i, j, k = (VARIABLES.index(c) for c in self.variables)
        return np.where(v[:, i] > 0.5, v[:, j], v[:, k])

    def is_related(self, other: PeaksTask) -> bool:
        """Same variables in another order."""
        return set(self.variables) == set(other.variables) and self != other

    def is_unrelated(self, other: PeaksTask) -> bool:
        """No variable in common (the other three variables)."""
        return not set(self.variables) & set(other.variables)

    def __str__(self) -> str:
        return self.name


def _check_values(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(VARIABLES):
        raise ValueError(
            f"peaks inputs are the values of the six variables A-F, shape (n_samples, 6); got "
            f"shape {v.shape}. Draw them with peaks.sample(n, seed)."
        )
    return v


def tasks() -> list[PeaksTask]:
    """The 120 peaks tasks P_{A,B,C}, P_{A,B,D}, …, P_{F,E,D} (ordered triples of variables)."""
    return [PeaksTask(*p) for p in itertools.permutations(VARIABLES, 3)]


def task(spec: str | Sequence[str] | PeaksTask) -> PeaksTask:
    """A task from ``"ABC"``, ``"P_{A,B,C}"``, ``("A", "B", "C")`` or a :class:`PeaksTask`."""
    if isinstance(spec, PeaksTask):
        return spec
    if isinstance(spec, str):
        letters = [c for c in spec.removeprefix("P_") if c.isalpha()]
    else:
        letters = [str(c) for c in spec]
    if len(letters) != 3:
        raise ValueError(
            f"a peaks task names three variables, e.g. 'ABC' or 'P_{{A,B,C}}'; got {spec!r}."
        )
    return PeaksTask(*letters)


def related(source: str | PeaksTask) -> list[PeaksTask]:
    """The 5 tasks with the source's variables in another order."""
    s = task(source)
    return [t for t in tasks() if s.is_related(t)]


def unrelated(source: str | PeaksTask) -> list[PeaksTask]:
    """The 6 tasks on the other three variables."""
    s = task(source)
    return [t for t in tasks() if s.is_unrelated(t)]


def triple(seed: int | np.random.Generator = 0) -> tuple[PeaksTask, PeaksTask, PeaksTask]:
    """(source, related, unrelated) as in §7.1: S reads 3 random variables in random order, T1
    the same variables in another order, T2 the other three in random order."""
    rng = np.random.default_rng(seed)
    order = [VARIABLES[i] for i in rng.permutation(len(VARIABLES))]
    s = PeaksTask(*order[:3])
    rel = related(s)
    t1 = rel[int(rng.integers(len(rel)))]
    rest = [order[3 + i] for i in rng.permutation(3)]
    return s, t1, PeaksTask(*rest)


def sample(n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n`` draws of the six variables, uniform on [0, 1): shape (n, 6)."""
    n = check_positive_int("n", n)
    return np.random.default_rng(seed).random((n, len(VARIABLES)))


def encode(values: Any) -> np.ndarray:
    """The 60 RBF features of the variables, each row normalised to length one.

    Feature (v, j) = 0.5·exp(−(value_v − c_j)² / (2·0.1²)) for the centres c_j = 0.0 … 0.9,
    variable-major (A's ten features first).
    """
    v = _check_values(values)
    c = np.asarray(CENTRES)
    f = HEIGHT * np.exp(-((v[:, :, None] - c[None, None, :]) ** 2) / (2 * WIDTH**2))
    f = f.reshape(v.shape[0], -1)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def dataset(
    targets: Iterable[str | PeaksTask] | str | PeaksTask,
    n: int = 10000,
    seed: int | np.random.Generator = 0,
    *,
    centre: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and labels of one or several tasks on the same ``n`` samples.

    Returns
    -------
    X : (n, 60) encoded inputs (unit rows)
    Y : (n, k) labels, one column per task, centred to mean zero (``centre``)
    values : (n, 6) the raw variable values
    """
    ts = [task(targets)] if isinstance(targets, str | PeaksTask) else [task(t) for t in targets]
    values = sample(n, seed)
    Y = np.stack([t.labels(values) for t in ts], axis=1)
    if centre:
        Y = Y - Y.mean(axis=0, keepdims=True)
    return encode(values), Y, values


# ----------------------------------------------------------------------------- network
def network(hidden_layers: int = 1, width: int = 60, seed: int = 0) -> Any:
    """The peaks network: 60 inputs, ``hidden_layers`` ReLU layers of ``width``, 1 linear output.

    Weights and biases are drawn as torch's default initialisation does (uniform on
    ±1/sqrt(fan_in)) from a local generator seeded by ``seed``; torch's global random state
    is untouched. Parameters are float64.
    """
    import torch
    from torch import nn

    hidden_layers = check_positive_int("hidden_layers", hidden_layers)
    width = check_positive_int("width", width)
    gen = torch.Generator().manual_seed(int(seed))
    layers: list[Any] = []
    d = len(VARIABLES) * len(CENTRES)
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, 1))
    net = nn.Sequential(*layers).to(torch.float64)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.uniform_(-bound, bound, generator=gen)
    return net


def train(
    net: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``net`` in place on (X, y) with mean squared error and Adam; per-epoch losses.

    Mini-batches of ``batch_size`` are drawn without replacement in a fresh random order
    each epoch (a local generator seeded by ``seed``); the returned list holds the mean
    training loss of each epoch.
    """
    import torch

    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(len(Xt), -1)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for s in range(0, len(Xt), batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            loss = torch.mean((net(Xt[idx]) - yt[idx]) ** 2)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(Xt))
    net.eval()
    return losses


def hidden(net: Any, X: Any) -> list[np.ndarray]:
    """The hidden representations of ``X`` (after each ReLU), as float64 arrays."""
    import torch
    from torch import nn

    out = []
    h = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, nn.ReLU):
                out.append(h.numpy().copy())
    return out


# ----------------------------------------------------------------------------- experiments
def _default_taus(n: int) -> np.ndarray:
    return np.linspace(0.0, 0.3, 31) * math.sqrt(n)


def _curve_rows(Phi: np.ndarray, Y: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Alignment (m, k) of each label column of Y with Φ (unit rows), at ``taus``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)  # dead ReLUs are expected
        c = curve(Phi, Y, taus, normalize="rows", kind="regression")
    return np.asarray(c.alignment)


def transfer_experiment(
    seeds: Iterable[int] = range(10),
    *,
    n: int = 10000,
    epochs: int = 30,
    hidden_layers: int = 1,
    width: int = 60,
    taus: Any = None,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> Any:
    """Alignment of source, related and unrelated labels with three representations (Fig. 10).

    For each seed: a random :func:`triple`, ``n`` samples, a :func:`network` trained on the
    source task for ``epochs`` epochs (Adam, batch 64, lr 0.001). Each task's centred labels
    are aligned with the original features (``representation="original"``, layer
    ``"input"``), the hidden representation at initialisation (``"init"``) and after training
    (``"transfer"``); every hidden layer of the deeper network is reported (Fig. 12). Every
    representation's rows are normalised to length one.

    Parameters
    ----------
    seeds : iterable of int, default range(10)
    n : int, default 10000
    epochs : int, default 30
        Passes over the source data ("until convergence" in the paper; 30 epochs of 10000
        samples bring the 60-60-1 network's training MSE to a plateau).
    hidden_layers : int, default 1 (3 for Fig. 12)
    width : int, default 60
    taus : sequence of float >= 0, optional
        Thresholds, common to all curves (default: 31 values from 0 to 0.3·sqrt(n); unit rows
        give σ₁ ≈ 0.9·sqrt(n) along the mean direction, which centred labels hardly touch, and
        the other singular values below 0.3·sqrt(n)).
    batch_size, lr : Adam's batch size and step size (64, 0.001).

    Returns
    -------
    pandas.DataFrame
        Columns ``seed``, ``role`` (source/related/unrelated), ``task``, ``source``,
        ``representation`` (original/init/transfer), ``layer`` (input, hidden1, …),
        ``tau``, ``alignment``; ``attrs["train_loss"]`` ``{seed: [per-epoch MSE]}``.
    """
    import pandas as pd

    t = _default_taus(n) if taus is None else np.atleast_1d(_check_taus(taus))
    rows: list[dict[str, Any]] = []
    losses: dict[int, list[float]] = {}
    for seed in seeds:
        s, t1, t2 = triple(seed)
        X, Y, _ = dataset([s, t1, t2], n, seed=seed)
        net = network(hidden_layers, width, seed=seed)
        reps: list[tuple[str, str, np.ndarray]] = [("original", "input", X)]
        reps += [("init", f"hidden{i + 1}", h) for i, h in enumerate(hidden(net, X))]
        losses[int(seed)] = train(net, X, Y[:, 0], epochs=epochs, batch_size=batch_size,
                                  lr=lr, seed=seed)  # fmt: skip
        reps += [("transfer", f"hidden{i + 1}", h) for i, h in enumerate(hidden(net, X))]
        for rep, layer, Phi in reps:
            a = _curve_rows(Phi, Y, t)
            for k, (role, tk) in enumerate(zip(ROLES, (s, t1, t2), strict=True)):
                rows += [
                    {"seed": int(seed), "role": role, "task": tk.name, "source": s.name,
                     "representation": rep, "layer": layer, "tau": float(tau),
                     "alignment": float(a[j, k])}
                    for j, tau in enumerate(t)
                ]  # fmt: skip
    cols = ["seed", "role", "task", "source", "representation", "layer", "tau", "alignment"]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs.update(
        {"experiment": "peaks_transfer", "n_samples": n, "epochs": epochs,
         "hidden_layers": hidden_layers, "width": width, "train_loss": losses}
    )  # fmt: skip
    return df


def _gd(
    Phi: np.ndarray,
    y: np.ndarray,
    Phi_test: np.ndarray,
    y_test: np.ndarray,
    lr: float,
    steps: int,
    log_steps: np.ndarray,
) -> list[tuple[int, float, float, float]]:
    w = np.zeros(Phi.shape[1])
    out = []
    logs = set(int(s) for s in log_steps)
    for t in range(steps + 1):
        if t in logs:
            out.append(
                (
                    t,
                    float(np.mean((Phi @ w - y) ** 2)),
                    float(np.mean((Phi_test @ w - y_test) ** 2)),
                    float(np.linalg.norm(w)),
                )
            )
        if t < steps:
            w = w - lr * (Phi.T @ (Phi @ w - y))
    return out


def linear_transfer(
    seeds: Iterable[int] = range(10),
    *,
    n: int = 10000,
    n_train: int = 100,
    n_test: int = 1000,
    epochs: int = 30,
    steps: int = 2000,
    lr_factors: Sequence[float] = (0.1, 0.3, 0.9),
    hidden_layers: int = 1,
    width: int = 60,
) -> Any:
    """Linear models on 100 samples of the related and unrelated task (Fig. 11).

    For each seed, the network is trained on the source task of :func:`triple` (``n``
    samples, as in :func:`transfer_experiment`); then ``n_train`` of those samples train a
    linear model by full-batch gradient descent w ← w − lr·Φᵀ(Φw − y) from w = 0 on each
    representation (original, init, transfer; the last hidden layer, unit rows), for the
    related and the unrelated task, and ``n_test`` fresh samples measure the test error.
    Step sizes: ``lr_factors`` × 1/σ_max² of each representation (a sweep of three, all
    kept in the frame).

    Returns
    -------
    pandas.DataFrame
        Columns ``seed``, ``role`` (related/unrelated), ``task``, ``representation``,
        ``lr_factor``, ``lr``, ``step``, ``train_error``, ``test_error`` (mean squared
        errors), ``weight_norm`` (‖w‖), ``train_reduction`` (fraction of the initial
        training loss removed).
    """
    import pandas as pd

    check_positive_int("n_train", n_train)
    check_positive_int("n_test", n_test)
    steps = check_positive_int("steps", steps)
    log_steps = np.unique(np.round(np.geomspace(1, steps, 40)).astype(int))
    log_steps = np.concatenate([[0], log_steps])
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        s, t1, t2 = triple(seed)
        X, Y, _ = dataset([s, t1, t2], n, seed=seed)
        means = dataset([s, t1, t2], n, seed=seed, centre=False)[1].mean(axis=0)
        rng = np.random.default_rng([int(seed), 1])
        values_test = rng.random((n_test, len(VARIABLES)))
        X_test = encode(values_test)
        Y_test = np.stack([tk.labels(values_test) for tk in (s, t1, t2)], axis=1) - means
        net = network(hidden_layers, width, seed=seed)
        init_train, init_test = hidden(net, X)[-1], hidden(net, X_test)[-1]
        train(net, X, Y[:, 0], epochs=epochs, seed=seed)
        reps = {
            "original": (X, X_test),
            "init": (init_train, init_test),
            "transfer": (hidden(net, X)[-1], hidden(net, X_test)[-1]),
        }
        pick = rng.choice(n, size=n_train, replace=False)
        for rep, (A_, B_) in reps.items():
            Phi = _unit_rows(A_[pick])
            Phi_test = _unit_rows(B_)
            smax = float(np.linalg.norm(Phi, 2))
            for role, k, tk in (("related", 1, t1), ("unrelated", 2, t2)):
                y_tr, y_te = Y[pick, k], Y_test[:, k]
                base = float(np.mean(y_tr**2))
                for f in lr_factors:
                    lr = float(f) / smax**2
                    for step, tr, te, wn in _gd(Phi, y_tr, Phi_test, y_te, lr, steps, log_steps):
                        rows.append(
                            {"seed": int(seed), "role": role, "task": tk.name,
                             "representation": rep, "lr_factor": float(f), "lr": lr,
                             "step": step, "train_error": tr, "test_error": te,
                             "weight_norm": wn, "train_reduction": 1 - tr / base}
                        )  # fmt: skip
    cols = ["seed", "role", "task", "representation", "lr_factor", "lr", "step",
            "train_error", "test_error", "weight_norm", "train_reduction"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    df.attrs.update(
        {"experiment": "peaks_linear_transfer", "n_samples": n, "n_train": n_train,
         "n_test": n_test, "epochs": epochs, "steps": steps}
    )  # fmt: skip
    return df


def _unit_rows(A: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norms > 0, norms, 1.0)


def summary(df: Any, taus: Any = None, *, layer: str | None = None) -> Any:
    """Mean and standard error over seeds of a :func:`transfer_experiment` frame.

    Parameters
    ----------
    df : the frame of :func:`transfer_experiment`
    taus : thresholds to keep (default: all of the frame's); each is matched to the nearest
        threshold of the frame.
    layer : hidden layer of the init/transfer rows (default: the last one)

    Returns
    -------
    pandas.DataFrame
        Columns ``role``, ``representation``, ``tau``, ``mean``, ``sem`` (standard error of
        the mean over seeds, ddof=1), ``n_seeds``.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or df.attrs.get("experiment") != "peaks_transfer":
        raise TypeError(
            "summary expects the DataFrame returned by nc.alignment.peaks.transfer_experiment; "
            f"got {type(df).__name__}."
        )
    hid = sorted({lay for lay in df["layer"] if lay != "input"})
    if layer is None:
        layer = hid[-1]
    check_option("layer", layer, tuple(hid))
    sub = df[(df["layer"] == layer) | (df["representation"] == "original")]
    if taus is not None:
        grid = np.unique(sub["tau"].to_numpy())
        want = np.atleast_1d(_check_taus(taus))
        near = {float(grid[np.argmin(np.abs(grid - w))]) for w in want}
        sub = sub[sub["tau"].isin(near)]
    g = sub.groupby(["role", "representation", "tau"], sort=False)["alignment"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["count"])
    out = out.rename(columns={"count": "n_seeds"}).drop(columns="std")
    return out[["role", "representation", "tau", "mean", "sem", "n_seeds"]]
