"""nncompare.analyses.populations and nncompare.plot.populations (issue #14 §2.1, 2.3-2.5).

Tiny populations with known answers: linear "checkpoints" whose stable and unstable
directions are planted, frames with hand-computed summaries, block distance matrices.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import nncompare as nc
from nncompare.analyses import populations as pop
from nncompare.plot import populations as pplot

torch.set_num_threads(1)


def _selector(columns: list[int], d_in: int = 20) -> nn.Module:
    """A network whose layer "lin" outputs the given input columns (a checkpoint)."""
    lin = nn.Linear(d_in, len(columns), bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        for i, c in enumerate(columns):
            lin.weight[i, c] = 1.0
    return nn.Sequential(OrderedDict(lin=lin))


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2000, 20, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def planted() -> dict[str, nn.Module]:
    # input columns 0-4 are the signal kept at every checkpoint; 5-19 are "noise" that
    # each checkpoint replaces by other, independent columns
    return {
        "early": _selector([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        "middle": _selector([0, 1, 2, 3, 4, 10, 11, 12, 13, 14]),
        "late": _selector([0, 1, 2, 3, 4, 15, 16, 17, 18, 19]),
        "final": _selector([4, 3, 2, 1, 0, 15, 16, 17, 18, 19]),
    }


# ---------------------------------------------------------------------- Fig. 1
def test_converging_coefficients_schema_and_planted_signal(planted, x):
    df = pop.converging_coefficients(planted, x, "lin")
    assert list(df.columns) == ["checkpoint", "order", "index", "rho", "mean_rho"]
    assert list(dict.fromkeys(df["checkpoint"])) == ["early", "middle", "late"]  # final left out
    for _name, sub in df.groupby("checkpoint"):
        rho = sub["rho"].to_numpy()
        assert len(rho) == 10 and np.all(np.diff(rho) <= 0)
        assert np.allclose(rho[:5], 1.0, atol=1e-8)  # the five shared signal columns
    # "late" holds exactly the final's columns (permuted): every coefficient is 1;
    # "early" and "middle" share only the signal, the rest is independent (~0)
    late = df[df["checkpoint"] == "late"]["rho"]
    early = df[df["checkpoint"] == "early"]["rho"].to_numpy()
    assert np.allclose(late, 1.0, atol=1e-8)
    assert np.all(early[5:] < 0.15)
    assert df.attrs["final"] == "final" and df.attrs["layer"] == "lin"


def test_converging_coefficients_final_and_errors(planted, x):
    df = pop.converging_coefficients(planted, x, "lin", final="late")
    assert "late" not in set(df["checkpoint"]) and "final" in set(df["checkpoint"])
    with pytest.raises(ValueError, match=r"final must be one of the checkpoints \['early'"):
        pop.converging_coefficients(planted, x, "lin", final="nope")
    with pytest.raises(ValueError, match="checkpoints needs at least 2 models; got 1"):
        pop.converging_coefficients({"a": planted["early"]}, x, "lin")
    with pytest.raises(TypeError, match=r"checkpoints\['a'\] must be a torch.nn.Module"):
        pop.converging_coefficients({"a": 1, "b": 2}, x, "lin")
    with pytest.raises(ValueError, match="conv must be one of \\['mean', 'flatten'\\]"):
        pop.converging_coefficients(planted, x, "lin", conv="dft")


def test_direction_stability_top_directions_stay_bottom_ones_go(planted, x):
    df = pop.direction_stability(planted, x, "lin", early="early", middle="middle", k=5)
    assert list(df.columns) == ["checkpoint", "order", "part", "k", "value"]
    assert set(df["checkpoint"]) == {"middle", "late", "final"}  # after "early" only
    v = df.set_index(["checkpoint", "part"])["value"]
    # S = the planted signal: fully present later; B = middle's own noise: gone later
    assert v[("late", "stable")] > 0.999 and v[("final", "stable")] > 0.999
    assert v[("late", "unstable")] < 0.1 and v[("final", "unstable")] < 0.1
    # at the middle checkpoint itself both parts are linear functions of the layer
    assert v[("middle", "stable")] > 0.999 and v[("middle", "unstable")] > 0.999


def test_direction_stability_errors(planted, x):
    with pytest.raises(ValueError, match=r"k must be an int between 1 and 5 \(half the 10"):
        pop.direction_stability(planted, x, "lin", early="early", middle="middle", k=6)
    with pytest.raises(ValueError, match="early must come before middle in training order"):
        pop.direction_stability(planted, x, "lin", early="late", middle="middle")
    with pytest.raises(ValueError, match="middle must be one of the checkpoints"):
        pop.direction_stability(planted, x, "lin", early="early", middle="T/2")


# ---------------------------------------------------------------------- Figs. 3-4
def _frame() -> pd.DataFrame:
    rows = []
    vals = {("a0", "a1"): 0.1, ("a0", "b0"): 0.5, ("a0", "b1"): 0.7, ("a1", "b0"): 0.6,
            ("a1", "b1"): 0.4, ("b0", "b1"): 0.3}  # fmt: skip
    for layer, shift in (("l1", 0.0), ("l2", 0.1)):
        for (a, b), v in vals.items():
            rows.append({"model_a": a, "model_b": b, "layer_a": layer, "layer_b": layer,
                         "measure": "pwcca", "value": 1 - v - shift, "distance": v + shift,
                         "error": None})  # fmt: skip
    failed = {"value": np.nan, "distance": np.nan, "error": "failed"}
    rows.append({"model_a": "a0", "model_b": "a1", "layer_a": "l1", "layer_b": "l1",
                 "measure": "pwcca", **failed})  # fmt: skip
    return pd.DataFrame(rows)


def test_group_summary_within_and_between_by_hand():
    groups = {"a0": "gen", "a1": "gen", "b0": "mem", "b1": "mem"}
    s = pop.group_summary(_frame(), groups)
    assert list(s.columns) == ["layer", "measure", "comparison", "kind", "mean", "std",
                               "n_pairs"]  # fmt: skip
    l1 = s[s["layer"] == "l1"].set_index("comparison")
    assert list(l1.index) == ["gen", "mem", "gen vs mem"]
    assert l1.loc["gen", "mean"] == pytest.approx(0.1) and l1.loc["gen", "n_pairs"] == 1
    assert l1.loc["gen vs mem", "mean"] == pytest.approx(0.55)
    assert l1.loc["gen vs mem", "std"] == pytest.approx(np.std([0.5, 0.7, 0.6, 0.4]))
    assert l1.loc["gen vs mem", "kind"] == "between" and l1.loc["mem", "kind"] == "within"
    assert s[s["layer"] == "l2"].set_index("comparison").loc["mem", "mean"] == pytest.approx(0.4)
    # "value" summarises the similarities instead
    v = pop.group_summary(_frame(), groups, value="value")
    assert v.iloc[0]["mean"] == pytest.approx(0.9)


def test_group_summary_errors():
    with pytest.raises(ValueError, match=r"groups has no group for the models \['b1'\]"):
        pop.group_summary(_frame(), {"a0": "g", "a1": "g", "b0": "h"})
    with pytest.raises(ValueError, match="compare_many-style frame with columns"):
        pop.group_summary(pd.DataFrame({"x": [1]}), {})
    with pytest.raises(TypeError, match="groups must be a mapping model name -> group label"):
        pop.group_summary(_frame(), ["gen", "mem"])


def test_direct_distances_known_values(x):
    a = _selector(list(range(10)))
    b = _selector(list(range(10)))
    with torch.no_grad():
        b.lin.weight.mul_(2.0)  # b = 2 a: cosine distance 0, Euclidean = RMS norm of a
    c = _selector(list(range(10, 20)))
    df = pop.direct_distances({"a": a, "b": b, "c": c}, x, layers="lin")
    assert set(df["measure"]) == {"cosine", "euclidean"} and len(df) == 6
    v = df.set_index(["model_a", "model_b", "measure"])["value"]
    A = x[:, :10].numpy().astype(np.float64)
    assert v[("a", "b", "cosine")] == pytest.approx(0.0, abs=1e-7)
    assert v[("a", "b", "euclidean")] == pytest.approx(np.linalg.norm(A) / np.sqrt(len(A)))
    # independent columns: nearly orthogonal
    assert v[("a", "c", "cosine")] == pytest.approx(1.0, abs=0.05)
    # the frame feeds group_summary
    s = pop.group_summary(df, {"a": "g", "b": "g", "c": "h"})
    assert set(s["measure"]) == {"cosine", "euclidean"}


def test_direct_distances_needs_equal_widths(x):
    with pytest.raises(ValueError, match=r"needs the same shape in every model; got \(2000, 10\)"):
        pop.direct_distances({"a": _selector(list(range(10))), "b": _selector([1, 2])}, x,
                             layers=["lin"])  # fmt: skip


def test_subset_distances_fixed_subset_per_width(x):
    wide = {f"w{i}": _selector(list(range(12))) for i in range(2)}
    narrow = {f"n{i}": _selector(list(range(8))) for i in range(2)}
    models = {**wide, **narrow}
    groups = {"w0": "12", "w1": "12", "n0": "8", "n1": "8"}
    df = pop.subset_distances(models, x, "lin", n_units=6, groups=groups, seed=3)
    # only pairs within a group; identical networks on the same subset: distance ~0
    assert sorted(zip(df["model_a"], df["model_b"], strict=True)) == [("n0", "n1"), ("w0", "w1")]
    assert np.allclose(df["distance"], 0.0, atol=1e-6)
    assert (df["n_units"] == 6).all()
    subsets = df.attrs["subsets"]
    assert sorted(subsets) == [8, 12] and all(len(s) == 6 for s in subsets.values())
    again = pop.subset_distances(models, x, "lin", n_units=6, seed=3)
    assert again.attrs["subsets"] == subsets and len(again) == 6  # all pairs without groups
    assert pop.subset_distances(models, x, "lin", n_units=6, seed=4).attrs["subsets"] != subsets


def test_subset_distances_errors(x):
    models = {"a": _selector(list(range(8))), "b": _selector(list(range(4)))}
    with pytest.raises(ValueError, match=r"n_units=6 is more than the 4 units of layer 'lin'"):
        pop.subset_distances(models, x, "lin", n_units=6)
    with pytest.raises(ValueError, match="n_units must be a positive int; got 0"):
        pop.subset_distances(models, x, "lin", n_units=0)


def test_distance_accuracy_recovers_a_planted_relation():
    acc = {"a0": 0.9, "a1": 0.9, "b0": 0.7, "b1": 0.7, "c0": 0.5, "c1": 0.5}
    groups = {k: k[0] for k in acc}
    rows = []
    for a, b in [("a0", "a1"), ("b0", "b1"), ("c0", "c1"), ("a0", "b0"), ("a1", "c1")]:
        mean_acc = (acc[a] + acc[b]) / 2
        rows.append({"model_a": a, "model_b": b, "measure": "pwcca",
                     "distance": 1.0 - mean_acc})  # fmt: skip
    r = pop.distance_accuracy(pd.DataFrame(rows), acc, groups=groups)
    assert list(r["level"]) == ["pairs", "groups"]
    assert r["pearson_r"].to_numpy() == pytest.approx([-1.0, -1.0])
    assert r.iloc[1]["n"] == 3
    short = pop.distance_accuracy(pd.DataFrame(rows[:2]), acc)
    assert np.isnan(short.iloc[0]["pearson_r"]) and "at least 3 points" in short.iloc[0]["note"]
    with pytest.raises(ValueError, match=r"accuracy has no value for the models \['c1'\]"):
        pop.distance_accuracy(pd.DataFrame(rows), {k: v for k, v in acc.items() if k != "c1"})


def test_group_summary_of_a_compare_many_frame_agrees_with_the_matrix_summary():
    from nncompare.analyses.cluster import group_summary as matrix_summary
    from nncompare.analyses.cluster import model_matrix

    torch.manual_seed(0)
    models = {f"m{i}": nc.models.MLP(8, (6, 5), 3) for i in range(4)}
    xx = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    df = nc.compare_many(models, xx, layers=["relu1", "relu2"], measures=["pwcca", "cca"])
    groups = {"m0": "x", "m1": "x", "m2": "y", "m3": "y"}
    s = pop.group_summary(df, groups)
    assert len(s) == 2 * 2 * 3 and set(s["n_pairs"]) == {1, 4}
    # the per-matrix summary of the cluster module: same numbers for a complete matrix
    meta = {k: {"group": v} for k, v in groups.items()}
    ref = matrix_summary(model_matrix(df, "relu2", "pwcca", metadata=meta), "group")
    ref.index = [
        a if a == b else f"{a} vs {b}" for a, b in zip(ref.group_a, ref.group_b, strict=True)
    ]
    mine = s[(s["layer"] == "relu2") & (s["measure"] == "pwcca")].set_index("comparison")
    ref = ref.loc[mine.index]
    assert mine["mean"].to_numpy() == pytest.approx(ref["mean"].to_numpy(), abs=1e-12)
    assert mine["std"].to_numpy() == pytest.approx(ref["std"].to_numpy(), abs=1e-12)


# ---------------------------------------------------------------------- figures
def test_figures(planted, x):
    cc = pop.converging_coefficients(planted, x, "lin")
    ds = pop.direction_stability(planted, x, "lin", early="early", middle="middle", k=5)
    groups = {"a0": "gen", "a1": "gen", "b0": "mem", "b1": "mem"}
    s = pop.group_summary(_frame(), groups)
    assert len(pplot.converging_coefficients(cc).axes) == 1
    assert len(pplot.direction_stability(ds).axes) == 1
    assert len(pplot.group_distances(s).axes) == 1
    wgroups = {"a0": "4", "a1": "4", "b0": "8", "b1": "8"}
    fr = _frame()[lambda d: d.layer_a == "l1"].dropna(subset=["distance"])
    acc = {"a0": 0.8, "a1": 0.82, "b0": 0.9, "b1": 0.91}
    fig = pplot.width_trend(pop.group_summary(fr, wgroups), fr, acc, wgroups)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match=r"group_summary needs a frame with the columns"):
        pplot.group_distances(cc)
    with pytest.raises(ValueError, match=r"measure='cka' is not in the summary; it has"):
        pplot.group_distances(s, measure="cka")


def test_tiny_population_generalising_logits_closer_than_across_groups():
    # 2 MLPs on the true labels of 300 digits, 2 on one fixed permutation of them (fitted in
    # part; the full memorisation run is benchmarks/populations_experiments.py):
    # on the held-out digits the generalising pair's logits agree far better (App. A10)
    from nncompare.workbench.data import load_digits
    from nncompare.workbench.training import train

    tr, te = load_digits("train"), load_digits("test")
    xx, y = tr.x[:300], tr.y[:300]
    y_rand = y[torch.randperm(300, generator=torch.Generator().manual_seed(5))]
    models, groups = {}, {}
    for kind, labels in (("gen", y), ("mem", y_rand)):
        for s in range(2):
            torch.manual_seed(10 + s)
            net = nc.models.MLP(64, (64,), 10)
            train(net, (xx, labels), epochs=60, lr=3e-3, seed=s, optimizer="adam")
            models[f"{kind}{s}"], groups[f"{kind}{s}"] = net, kind
    df = nc.compare_many(models, te.x, layers=["fc2"], measures=["pwcca"])
    s = pop.group_summary(df, groups).set_index("comparison")["mean"]
    assert s["gen"] < 0.5 * s["gen vs mem"]
