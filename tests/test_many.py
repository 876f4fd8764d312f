"""Model sets (issue #14 §1, §2.2, §3): square matrices, clusters, the PWCCA toy, the CLI.

compare_many itself (pairs once, equal to compare_models, one forward pass per model) is
tested in tests/test_dask.py; here: each layer's decomposition is done once for all its
pairs, the matrices hold exactly the frame's values with the models' metadata, the
clustering recovers planted groups, and the toy generator's dimensions are exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import nncompare as nc
from nncompare.analyses import cluster, group_summary, model_matrices, model_matrix
from nncompare.analyses.cluster import adjusted_rand, classical_mds

LAYERS = ["0", "2"]


def _net(seed: int, scale: float = 0.5) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 8), torch.nn.Tanh()
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return m


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    nets = {f"m{i}": _net(i) for i in range(4)}
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(3))
    meta = {f"m{i}": {"seed": i, "lr": 0.1 if i < 2 else 0.01} for i in range(4)}
    df = nc.compare_many(nets, x, layers=LAYERS, measures=["cca", "pwcca"])
    return nets, x, meta, df


def test_each_layer_is_decomposed_once_for_all_its_pairs(setup, monkeypatch):
    nets, x, _, _ = setup
    computed: list[tuple] = []
    original = nc.Moments.cached

    def counting(self, which, key, compute):
        def wrapped():
            computed.append(key)
            return compute()

        return original(self, which, key, wrapped)

    monkeypatch.setattr(nc.Moments, "cached", counting)
    df = nc.compare_many(nets, x, layers=["0"], measures=["cca"])
    assert len(df) == 6  # 4 models: 6 unordered pairs
    whiten = [k for k in computed if k[0] == "whiten"]
    assert len(whiten) == 4  # one per model's layer, not 2 per pair (12)


def test_matrix_holds_the_frame_values_with_metadata(setup):
    nets, _, meta, df = setup
    mats = model_matrices(df, metadata=meta)
    assert set(mats) == {(la, m) for la in LAYERS for m in ("cca", "pwcca")}
    mm = mats["2", "pwcca"]
    assert mm.names == list(nets) and mm.kind == "distance"
    assert mm.values.shape == (4, 4)
    np.testing.assert_array_equal(np.diag(mm.values), 0.0)
    np.testing.assert_array_equal(mm.values, mm.values.T)
    rows = df[(df.layer_a == "2") & (df.measure == "pwcca")]
    for r in rows.itertuples():
        i, j = mm.names.index(r.model_a), mm.names.index(r.model_b)
        assert mm.values[i, j] == r.distance
    assert list(mm.metadata.columns) == ["seed", "lr"]
    assert mm.metadata.loc["m3", "lr"] == 0.01
    sim = model_matrix(df, "2", "pwcca", value="similarity")
    np.testing.assert_allclose(sim.values + mm.values, 1.0, atol=1e-12)
    np.testing.assert_allclose(sim.distances(), mm.values, atol=1e-12)
    assert mm.to_frame().loc["m0", "m1"] == mm.values[0, 1]


def test_compare_many_keeps_metadata_for_the_matrices(setup):
    nets, x, meta, _ = setup
    df = nc.compare_many(nets, x, layers=["2"], measures=["cca"], metadata=meta)
    assert df.attrs["provenance"]["metadata"]["m2"] == {"seed": 2, "lr": 0.01}
    mm = model_matrices(df)["2", "cca"]
    assert mm.metadata.loc["m2", "lr"] == 0.01 and mm.metadata.loc["m0", "seed"] == 0
    with pytest.raises(
        ValueError,
        match=r"metadata has no entry for the models \['m1', 'm2', 'm3'\] \(it has \['m0'\]\)",
    ):
        nc.compare_many(nets, x, layers=["2"], measures=["cca"], metadata={"m0": {}})
    with pytest.raises(TypeError, match=r"metadata\['m0'\] must be a dict of attributes"):
        nc.compare_many(nets, x, layers=["2"], measures=["cca"], metadata=dict.fromkeys(nets, 1))


def test_matrix_values_equal_pairwise_compare_models(setup):
    nets, x, _, df = setup
    mm = model_matrix(df, "0", "cca")
    one = nc.compare_models(
        nets["m1"], nets["m3"], x, layers_a=["0"], layers_b=["0"], measures=["cca"]
    )
    assert mm.values[1, 3] == pytest.approx(float(one["distance"].iloc[0]), abs=1e-10)


def test_matrix_errors_are_specific(setup):
    _, _, meta, df = setup
    with pytest.raises(ValueError, match="no rows for layer 'nope'"):
        model_matrix(df, "nope", "cca")
    with pytest.raises(ValueError, match=r"metadata has no entry for the models \['m3'\]"):
        model_matrix(df, "0", "cca", metadata={k: meta[k] for k in ("m0", "m1", "m2")})
    with pytest.raises(ValueError, match="value must be one of 'distance', 'similarity'"):
        model_matrix(df, "0", "cca", value="dist")
    broken = df.copy()
    broken.loc[broken.index[0], "distance"] = np.nan
    with pytest.raises(ValueError, match="is NaN for m0 vs m1"):
        model_matrix(broken, "0", "cca")
    with pytest.raises(ValueError, match="model pairs have no row"):
        model_matrix(df.iloc[1:], "0", "cca")
    with pytest.raises(ValueError, match="it lacks"):
        model_matrix(df.drop(columns=["distance"]), "0", "cca")


def _planted(n_per: int = 4, groups: int = 3, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 5)) * 10
    pts = np.concatenate([c + rng.normal(size=(n_per, 5)) for c in centres])
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    return d, [g for g in range(groups) for _ in range(n_per)]


def test_cluster_recovers_planted_groups_and_mds_is_exact_for_euclidean():
    d, truth = _planted()
    c = cluster(d, n_clusters=3, n_components=5)
    assert adjusted_rand(c.labels, truth) == 1.0
    # classical MDS of Euclidean distances in 5-D reproduces them exactly
    assert c.stress < 1e-10
    # the dendrogram order keeps every group contiguous
    pos = [truth[i] for i in c.order]
    assert sum(pos[k] != pos[k + 1] for k in range(len(pos) - 1)) == 2


def test_cluster_agreement_with_metadata(setup):
    d, truth = _planted(seed=1)
    names = [f"n{i}" for i in range(len(truth))]
    mm = nc.analyses.ModelMatrix(
        d, names, "fc", "pwcca", "distance",
        pd.DataFrame({"lr": [[0.1, 0.01, 0.001][g] for g in truth]}, index=names),
    )  # fmt: skip
    c = cluster(mm, n_clusters=3)
    assert c.agreement("lr") == 1.0
    table = c.to_frame()
    assert {"model", "cluster", "mds1", "mds2", "order", "lr"} <= set(table.columns)
    summary = group_summary(mm, "lr")
    within = summary[summary.group_a == summary.group_b]["mean"]
    between = summary[summary.group_a != summary.group_b]["mean"]
    assert within.max() < between.min()
    assert summary["n_pairs"].sum() == len(names) * (len(names) - 1) // 2


def test_smacof_mds_does_not_worsen_the_classical_start():
    pytest.importorskip("sklearn")
    d, _ = _planted(seed=2)
    d = np.sqrt(d)  # not Euclidean: classical MDS is not exact
    classical = cluster(d)
    smacof = cluster(d, mds="smacof")
    assert smacof.stress <= classical.stress + 1e-9


def test_adjusted_rand_reference_values():
    # hand-computed: sklearn.metrics.adjusted_rand_score gives the same
    assert adjusted_rand([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_classical_mds_of_a_line():
    pts = np.array([0.0, 1.0, 3.0, 7.0])
    d = np.abs(pts[:, None] - pts[None])
    coords = classical_mds(d, 1)[:, 0]
    np.testing.assert_allclose(np.abs(coords[:, None] - coords[None]), d, atol=1e-10)


def test_cluster_refuses_bad_matrices():
    d, _ = _planted()
    with pytest.raises(ValueError, match="not symmetric"):
        cluster(d + np.triu(np.ones_like(d)))
    with pytest.raises(ValueError, match="at least 3 models"):
        cluster(d[:2, :2])
    with pytest.raises(ValueError, match="square array"):
        cluster(d[:3])
    bad = d.copy()
    bad[0, 1] = bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        cluster(bad)
    with pytest.raises(ValueError, match="zero diagonal"):
        cluster(d + 1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        cluster(d, method="centroid")
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 12\]"):
        cluster(d, n_clusters=13)
    with pytest.raises(ValueError, match="has no flat clusters"):
        cluster(d).agreement("lr")


# ---------------------------------------------------------------------- the PWCCA toy
def test_toy_has_exact_signal_and_noise_dimensions():
    from nncompare.analyses.toys import signal_noise_pair

    toy = signal_noise_pair(1500, 6, 9, noise_scale=0.5, seed=4)
    assert toy.x.shape == toy.y.shape == (1500, 15)
    assert (toy.n_signal, toy.n_noise) == (6, 9)
    assert np.linalg.matrix_rank(toy.x) == 15
    # exactly n_signal shared dimensions: the signal lies in both column spaces, and the
    # canonical correlations are 1 for 6 directions and chance level for the other 9
    rho = np.sort(nc.cca(toy.x, toy.y).rho)[::-1]
    np.testing.assert_allclose(rho[:6], 1.0, atol=1e-10)
    assert rho[6:].max() < 0.2
    coef, *_ = np.linalg.lstsq(toy.x, toy.signal, rcond=None)
    np.testing.assert_allclose(toy.x @ coef, toy.signal, atol=1e-10)
    # the noise is the other side's blind spot
    coef, *_ = np.linalg.lstsq(toy.y, toy.noise_x, rcond=None)
    assert np.linalg.norm(toy.y @ coef) / np.linalg.norm(toy.noise_x) < 0.2
    np.testing.assert_allclose(toy.noise_x.std(), 0.5, rtol=0.05)


def test_toy_pwcca_is_more_robust_than_mean_cca():
    from nncompare.analyses.toys import signal_noise_curves

    df = signal_noise_curves((0, 10, 40), n_signal=8, n_samples=2000, seeds=(0,))
    v = df.pivot_table("value", "n_noise", "measure")
    np.testing.assert_allclose(v.loc[0], 1.0, atol=1e-8)  # no noise: everything shared
    assert (v.loc[[10, 40], "pwcca"] > v.loc[[10, 40], "cca"] + 0.05).all()
    assert v.loc[40, "cca"] < v.loc[10, "cca"]  # the unweighted mean falls with the noise
    assert set(df.columns) >= {"n_signal", "n_noise", "ratio", "seed", "measure", "value"}


def test_toy_refuses_bad_sizes():
    from nncompare.analyses.toys import signal_noise_pair

    with pytest.raises(
        ValueError, match=r"n_samples \(20\) must exceed n_signal \+ n_noise \(30\)"
    ):
        signal_noise_pair(20, 10, 20)
    with pytest.raises(ValueError, match="n_signal must be >= 1; got 0"):
        signal_noise_pair(100, 0, 5)
    with pytest.raises(TypeError, match="n_noise must be an int; got float"):
        signal_noise_pair(100, 3, 2.5)
    with pytest.raises(ValueError, match="noise_scale must be a positive finite number"):
        signal_noise_pair(100, 3, 2, noise_scale=0.0)


# ---------------------------------------------------------------------- the CLI and report
FACTORY = "nncompare.models:MLP(in_features=6, hidden=(12, 8), out_features=3)"


@pytest.fixture()
def cli_files(tmp_path):
    from nncompare.models import MLP
    from nncompare.workbench.training import save_state_dict

    ck = tmp_path / "ckpts"
    ck.mkdir()
    rows = []
    for i in range(5):
        torch.manual_seed(i)
        save_state_dict(MLP(6, hidden=(12, 8), out_features=3).state_dict(), ck / f"run{i}.pt")
        rows.append({"model": f"run{i}", "seed": i, "lr": 0.1 if i < 3 else 0.01})
    pd.DataFrame(rows).to_csv(tmp_path / "meta.csv", index=False)
    x = np.random.default_rng(0).normal(size=(150, 6)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x)
    return tmp_path


def test_cli_compare_many_writes_matrices_dendrogram_mds_and_groups(cli_files):
    from click.testing import CliRunner

    from nncompare.cli.main import cli

    d = cli_files
    out = d / "out"
    res = CliRunner().invoke(
        cli,
        ["compare-many", str(d / "ckpts"), "--factory", FACTORY, "--data", str(d / "data.npz"),
         "--layer", "relu1,relu2", "--metadata", str(d / "meta.csv"), "--group-by", "lr",
         "--n-clusters", "2", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "models: 5 (10 pairs)" in res.output
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 10 * 2 * 2  # pairs x layers x measures (pwcca, cca)
    m = pd.read_csv(out / "matrices" / "relu2__pwcca.csv", index_col=0)
    assert list(m.index) == [f"run{i}" for i in range(5)] and m.shape == (5, 5)
    row = frame[(frame.model_a == "run1") & (frame.model_b == "run3")]
    row = row[(row.layer_a == "relu2") & (row.measure == "pwcca")]
    assert m.loc["run1", "run3"] == pytest.approx(float(row["distance"].iloc[0]), abs=1e-12)
    clusters = pd.read_csv(out / "clusters.csv")
    assert set(clusters.columns) >= {"layer", "measure", "model", "cluster", "mds1", "lr"}
    assert len(clusters) == 4 * 5
    groups = pd.read_csv(out / "groups.csv")
    within = groups[(groups.layer == "relu2") & (groups.measure == "pwcca")]
    assert within["n_pairs"].sum() == 10
    html = (out / "report.html").read_text()
    assert "pwcca at relu2" in html and "within and between groups of lr" in html
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "heatmap_relu2__pwcca.png" in figs and "mds_relu2__pwcca.png" in figs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-by", "lr"], "groups come from the models' metadata; pass --metadata"),
        (["--layer", "nope"], "Invalid value for --layer: run0: No layer named 'nope'"),
        (["--metadata", "BADMETA"], "has no entry for the models"),
        (["--metadata", "META", "--group-by", "width"], "'width' is not in the metadata"),
    ],
)
def test_cli_compare_many_errors_are_one_line(cli_files, extra, message):
    from click.testing import CliRunner

    from cli_util import error_line
    from nncompare.cli.main import cli

    d = cli_files
    pd.DataFrame({"model": ["run0"], "lr": [1]}).to_csv(d / "bad.csv", index=False)
    extra = [
        str(d / "bad.csv") if e == "BADMETA" else str(d / "meta.csv") if e == "META" else e
        for e in extra
    ]
    args = ["compare-many", str(d / "ckpts"), "--factory", FACTORY, "--data", str(d / "data.npz")]
    line = error_line(CliRunner().invoke(cli, [*args, *extra, "--out", str(d / "o")]))
    assert message in line


def test_cli_compare_many_needs_factory_for_a_directory(cli_files):
    from click.testing import CliRunner

    from cli_util import error_line
    from nncompare.cli.main import cli

    d = cli_files
    line = error_line(
        CliRunner().invoke(cli, ["compare-many", str(d / "ckpts"), "--data", str(d / "data.npz")])
    )
    assert "is a directory; a directory of checkpoints needs --factory SPEC" in line
    line = error_line(
        CliRunner().invoke(
            cli,
            [
                "compare-many",
                str(d / "ckpts" / "run0.pt"),
                "--factory",
                FACTORY,
                "--data",
                str(d / "data.npz"),
            ],
        )
    )
    assert "needs at least two models; got 1" in line
