"""The task-alignment lens (issue #11; Imani, Hu & White, "Representation alignment in neural
networks", TMLR 2022: eq. 2, Propositions 1-2, §4.1 and §7.1)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nncompare as nc
from nncompare.alignment import peaks
from nncompare.errors import RankDeficiencyWarning

torch.set_num_threads(1)
A = nc.alignment


def _data(n: int = 300, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(n, d)) + 0.5
    y = (Phi[:, 0] - Phi[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return Phi, y


def _unit_rows(Phi: np.ndarray) -> np.ndarray:
    return Phi / np.linalg.norm(Phi, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- eq. 2
def test_alignment_at_zero_is_the_squared_norm_of_the_projection():
    Phi, y = _data()
    U = _unit_rows(Phi)
    ypm = np.where(y == 1, 1.0, -1.0)
    # projection onto the column space by least squares (no SVD involved)
    proj = U @ np.linalg.lstsq(U, ypm, rcond=None)[0]
    assert float(A.alignment(Phi, y, 0.0)) == pytest.approx(float(proj @ proj), rel=1e-12)
    # regression: centred targets; normalize="max" divides by the largest row norm
    t = Phi[:, 2] * 3 + 1.0
    tc = t - t.mean()
    M = Phi / np.linalg.norm(Phi, axis=1).max()
    proj = M @ np.linalg.lstsq(M, tc, rcond=None)[0]
    assert float(A.alignment(Phi, t, 0.0, normalize="max")) == pytest.approx(
        float(proj @ proj), rel=1e-12
    )
    c = A.curve(Phi, t, normalize="max")
    assert float(c.residual[0]) == pytest.approx(float(np.sum((tc - proj) ** 2)), rel=1e-9)


def test_alignment_is_the_sum_over_singular_values_above_the_threshold():
    Phi, y = _data(d=5)
    U, S, _ = np.linalg.svd(_unit_rows(Phi), full_matrices=False)
    p = (U.T @ np.where(y == 1, 1.0, -1.0)) ** 2
    tau = (S[1] + S[2]) / 2  # keeps the two largest singular directions
    assert float(A.alignment(Phi, y, tau)) == pytest.approx(p[0] + p[1], rel=1e-12)
    assert float(A.alignment(Phi, y, S[0] * 1.01)) == 0.0


def test_k_classes_are_one_vs_rest_vectors_reported_per_class_and_summed():
    rng = np.random.default_rng(1)
    Phi = rng.normal(size=(240, 6))
    y = np.array(["cat", "dog", "owl"])[rng.integers(0, 3, 240)]
    per = A.alignment(Phi, y, 0.5, per_label=True)
    U = _unit_rows(Phi)
    for k, cls in enumerate(["cat", "dog", "owl"]):
        v = np.where(y == cls, 1.0, -1.0)
        u, s, _ = np.linalg.svd(U, full_matrices=False)
        assert per[k] == pytest.approx(np.sum(((u.T @ v) ** 2)[s >= 0.5]), rel=1e-12)
    assert float(A.alignment(Phi, y, 0.5)) == pytest.approx(per.sum(), rel=1e-12)
    assert A.curve(Phi, y).labels == ("cat", "dog", "owl")


def test_circle_example_labels_along_the_first_direction_align_better():
    """§4.1, Fig. 4: unit vectors around pi/4 and -3pi/4; labelling along v1 vs along v2."""
    rng = np.random.default_rng(0)
    ang = np.concatenate([np.pi / 4 + 0.3 * rng.normal(size=500),
                          -3 * np.pi / 4 + 0.3 * rng.normal(size=500)])  # fmt: skip
    X = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    along_v1 = np.repeat([1, 0], 500)  # the two clusters
    along_v2 = (X @ np.array([1.0, -1.0]) > 0).astype(int)  # split across the spread
    c1, c2 = A.curve(X, along_v1), A.curve(X, along_v2)
    s1, s2 = (float(s) for s in c1.singular_values)
    assert s1 > 2 * s2
    mid = (s1 + s2) / 2
    assert float(c1.at(mid)[0]) > 0.9 * 1000 > float(c2.at(mid)[0])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 60), d=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_curves_are_non_increasing_in_tau(n, d, seed):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = A.curve(Phi, y, taus=np.linspace(0, 2 * math.sqrt(n), 50))
    assert np.all(np.diff(c.total) <= 1e-12)
    assert float(c.total[-1]) == 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(2, 7))
def test_alignment_is_invariant_to_an_orthogonal_rotation_of_the_columns(seed, d):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(80, d))
    y = rng.integers(0, 3, 80)
    if len(np.unique(y)) < 2:
        y[0], y[1] = 0, 1
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = A.curve(Phi, y, taus=np.linspace(0, 8, 17))
    b = A.curve(Phi @ Q, y, taus=np.linspace(0, 8, 17))
    np.testing.assert_allclose(b.singular_values, a.singular_values, rtol=1e-10)
    # away from the thresholds that coincide with a singular value, the curves agree
    np.testing.assert_allclose(b.total, a.total, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("normalize", ["rows", "max", None])
@pytest.mark.parametrize("labels", ["two", "three", "regression", "targets"])
def test_streaming_equals_in_memory(normalize, labels):
    rng = np.random.default_rng(2)
    Phi = rng.normal(size=(500, 7)) + 1.0
    y = {
        "two": rng.integers(0, 2, 500),
        "three": rng.integers(0, 3, 500),
        "regression": Phi[:, 0] + rng.normal(size=500),
        "targets": rng.normal(size=(500, 2)),
    }[labels]
    s = A.StreamingAlignment(normalize=normalize)
    for a, b in [(0, 3), (3, 100), (100, 333), (333, 500)]:
        s.update(Phi[a:b], y[a:b])
    got, want = s.curve(), A.curve(Phi, y, normalize=normalize)
    assert got.method == "streamed" and want.method == "svd"
    assert got.labels == want.labels
    np.testing.assert_allclose(got.singular_values, want.singular_values, rtol=1e-10)
    np.testing.assert_allclose(got.projections, want.projections, rtol=1e-8, atol=1e-9)
    taus = np.linspace(0, float(want.singular_values[0]) * 1.1, 29)  # no tau on a sigma
    np.testing.assert_allclose(s.curve(taus).alignment, want.at(taus), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(got.residual, want.residual, rtol=1e-7, atol=1e-7)


def test_streaming_merge_and_memory_independent_of_n():
    rng = np.random.default_rng(3)
    Phi, y = rng.normal(size=(900, 5)), rng.integers(0, 2, 900)
    a, b = A.StreamingAlignment(), A.StreamingAlignment()
    a.update(Phi[:400], y[:400])
    b.update(Phi[400:], y[400:])
    merged = a.merge(b).curve()
    np.testing.assert_allclose(merged.projections, A.curve(Phi, y).projections, rtol=1e-8)
    # the state is the d x d joint moments and one d-vector per class, whatever n is
    assert tuple(a._jm.zcom.shape) == (5, 5)
    assert all(tuple(v.shape) == (5,) for v in a._class_sums.values())


def test_streaming_rejects_inconsistent_batches():
    s = A.StreamingAlignment()
    s.update(np.ones((4, 3)) + np.eye(4, 3), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="this batch of Phi has 2 features but earlier batches"):
        s.update(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="look like regression but earlier batches were classes"):
        s.update(np.ones((2, 3)), [0.5, 0.2])


# ----------------------------------------------------------------------------- torch
def test_torch_in_stays_torch_with_gradients_and_matches_numpy():
    Phi, y = _data(n=120, d=4)
    t = torch.tensor(Phi, requires_grad=True)
    a = A.alignment(t, torch.tensor(y), 1.5)
    assert isinstance(a, torch.Tensor)
    a.backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert float(a.detach()) == pytest.approx(float(A.alignment(Phi, y, 1.5)), rel=1e-12)
    c = A.curve(torch.tensor(Phi), y)
    assert isinstance(c.singular_values, torch.Tensor)
    s = A.StreamingAlignment()
    s.update(torch.tensor(Phi[:50]), y[:50]).update(torch.tensor(Phi[50:]), y[50:])
    assert isinstance(s.curve().projections, torch.Tensor)
    np.testing.assert_allclose(s.curve().projections.numpy(), c.projections.numpy(), rtol=1e-8)


# ----------------------------------------------------------------------------- Props 1-2
def _gd_losses(Phi: np.ndarray, Y: np.ndarray, lr: float, steps: int) -> np.ndarray:
    w = np.zeros((Phi.shape[1], Y.shape[1]))
    out = []
    for _ in range(steps + 1):
        r = Phi @ w - Y
        out.append(np.sum(r * r))
        w = w - lr * Phi.T @ r
    return np.array(out)


@pytest.mark.parametrize("case", ["binary", "three_classes", "rank_deficient", "regression"])
def test_predicted_loss_equals_a_real_gradient_descent_run(case):
    rng = np.random.default_rng(4)
    Phi = rng.normal(size=(200, 6))
    y = rng.integers(0, 2, 200)
    if case == "three_classes":
        y = rng.integers(0, 3, 200)
    elif case == "rank_deficient":
        Phi[:, 5] = Phi[:, 0] + Phi[:, 1]
    elif case == "regression":
        y = Phi[:, 0] ** 2 + rng.normal(size=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        P, Y, _ = A.prepare(Phi, y)
        smax = float(np.linalg.norm(P, 2))
        lr = 0.5 / smax**2
        pred = A.predicted_loss(Phi, y, lr, 100)
    assert pred.loss.shape == (101,)
    np.testing.assert_allclose(pred.loss, _gd_losses(P, Y, lr, 100), rtol=1e-10, atol=1e-10)
    assert float(pred.loss[0]) == pytest.approx(float(np.sum(Y * Y)), rel=1e-12)


def test_predicted_loss_warns_outside_the_step_size_condition():
    Phi, y = _data(n=100, d=3)
    smax = float(A.curve(Phi, y).singular_values[0])
    with pytest.warns(UserWarning, match="not below 1/sigma_max\\^2.*diverges"):
        pred = A.predicted_loss(Phi, y, 3 / smax**2, 5)
    P, Y, _ = A.prepare(Phi, y)
    np.testing.assert_allclose(pred.loss, _gd_losses(P, Y, 3 / smax**2, 5), rtol=1e-10)
    with pytest.raises(ValueError, match="lr must be a positive, finite step size; got -1"):
        A.predicted_loss(Phi, y, -1, 5)
    with pytest.raises(ValueError, match=r"steps must be a non-negative integer; got 2\.5"):
        A.predicted_loss(Phi, y, 0.001, 2.5)


def test_iterations_bound_is_proposition_2_and_holds_for_gradient_descent():
    Phi, y = _data(n=200, d=6)
    c = A.curve(Phi, y)
    s = np.asarray(c.singular_values)
    tau, lr = float(s[2]), 0.9 / float(s[0]) ** 2
    b = A.iterations_bound(Phi, y, tau, lr)
    assert b.iterations == pytest.approx(math.log(10) / (2 * lr * tau**2), rel=1e-12)
    assert b.alignment == pytest.approx(float(c.at(tau)[0]), rel=1e-12)
    P, Y, _ = A.prepare(Phi, y)
    losses = _gd_losses(P, Y, lr, math.ceil(b.iterations))
    assert losses[0] - losses[-1] >= b.reduction
    with pytest.raises(ValueError, match="needs 0 < tau <= sigma_max"):
        A.iterations_bound(Phi, y, float(s[0]) * 2, lr)
    with pytest.raises(ValueError, match="needs lr < 1/sigma_max\\^2"):
        A.iterations_bound(Phi, y, tau, 2 / float(s[0]) ** 2)
    with pytest.raises(ValueError, match="fraction must lie in \\[0, 1\\)"):
        A.iterations_bound(Phi, y, tau, lr, fraction=1.0)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors():
    Phi, y = _data(n=50, d=3)
    with pytest.raises(ValueError, match="y has 49 labels but Phi has 50 rows"):
        A.alignment(Phi, y[:49])
    with pytest.raises(ValueError, match="y holds one class only \\(1 for every sample\\)"):
        A.alignment(Phi, np.ones(50, dtype=int))
    yr = y.astype(float)
    yr[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN or infinite labels"):
        A.alignment(Phi, yr)
    bad = Phi.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="Phi contains non-finite values"):
        A.curve(bad, y)
    with pytest.raises(ValueError, match="tau is a threshold on singular values and must be >= 0"):
        A.alignment(Phi, y, -0.1)
    with pytest.raises(
        ValueError, match=r"y is constant .* after centring the label vector is zero"
    ):
        A.alignment(Phi, np.full(50, 2.5))
    with pytest.raises(ValueError, match="normalize must be one of 'rows', 'max', None"):
        A.curve(Phi, y, normalize="unit")
    with pytest.raises(ValueError, match="Phi must be a 2-D representation matrix"):
        A.curve(Phi[:, 0], y)


def test_rank_deficient_phi_warns_with_its_rank_and_the_curve_is_still_defined():
    Phi, y = _data(n=100, d=4)
    Phi = np.concatenate([Phi, Phi[:, :1] * 2.0], axis=1)
    with pytest.warns(RankDeficiencyWarning, match="rank 4 of 5 features"):
        c = A.curve(Phi, y)
    assert c.rank == 4 and c.singular_values.shape == (4,)
    assert np.all(np.isfinite(c.total))


def test_fewer_samples_than_features_warns():
    rng = np.random.default_rng(5)
    with pytest.warns(A.SmallSampleWarning, match="fewer samples than features \\(n=5 < d=8\\)"):
        c = A.curve(rng.normal(size=(5, 8)), [0, 1, 0, 1, 1])
    assert c.rank == 5
    # every label vector lies in the column space: alignment at 0 is ||y||^2 = n
    assert float(c.total[0]) == pytest.approx(5.0, rel=1e-10)


# ----------------------------------------------------------------------------- layers
def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
        torch.nn.Linear(8, 2),
    )  # fmt: skip


def test_layer_alignment_per_layer_and_checkpoint_in_one_pass():
    net = _mlp()
    x = torch.randn(300, 6)
    y = (x[:, 0] > 0).long()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    trained = {k: v + 0.1 for k, v in init.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        df = A.layer_alignment(net, (x, y), layers=["1", "3"],
                               checkpoints={"init": init, "trained": trained},
                               batch_size=64)  # fmt: skip
    assert df.attrs["layers"] == ["input", "1", "3"]
    assert df.attrs["checkpoints"] == ["init", "trained"]
    assert df.attrs["n_samples"] == 300
    # the streamed input curve equals the in-memory curve of the inputs
    sub = df[(df.layer == "input") & (df.checkpoint == "init")]
    want = A.curve(x.numpy().astype(np.float64), y.numpy())
    np.testing.assert_allclose(sub["alignment"], want.total, rtol=1e-8, atol=1e-8)
    # hidden layer "3" at the trained checkpoint equals the curve of its activations
    m = _mlp()
    m.load_state_dict(trained)
    with torch.no_grad():
        h = m[:4](x).double().numpy()
    sub = df[(df.layer == "3") & (df.checkpoint == "trained")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        want = A.curve(h, y.numpy())
    np.testing.assert_allclose(sub["alignment"], want.total, rtol=1e-7, atol=1e-7)


def test_layer_alignment_reads_checkpoint_files_and_casts_inputs(tmp_path):
    net = peaks.network(1, seed=0)  # float64 parameters, float32 data
    X, Y, _ = peaks.dataset("ABC", n=200, seed=0)
    first = tmp_path / "epoch0.pt"
    torch.save(net.state_dict(), first)
    peaks.train(net, X, Y[:, 0], epochs=1)
    second = tmp_path / "epoch1.pt"
    torch.save(net.state_dict(), second)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        df = A.layer_alignment(net, torch.tensor(X, dtype=torch.float32), labels=Y[:, 0],
                               layers=["1"], checkpoints=[first, second])  # fmt: skip
    assert df.attrs["checkpoints"] == ["epoch0", "epoch1"]
    assert df.attrs["kind"] == "regression"
    h = peaks.hidden(net, X.astype(np.float32).astype(np.float64))[0]
    sub = df[(df.layer == "1") & (df.checkpoint == "epoch1")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        want = A.curve(h, Y[:, 0])
    np.testing.assert_allclose(sub["alignment"], want.total, rtol=1e-7, atol=1e-7)


def test_layer_alignment_label_errors():
    net = _mlp()
    x = torch.randn(100, 6)
    with pytest.raises(
        ValueError, match=r"labels has 99 entries but the data has more samples \(at least 100\)"
    ):
        A.layer_alignment(net, x, labels=np.zeros(99, int) + np.arange(99) % 2, layers=["1"])
    with pytest.raises(ValueError, match="layer_alignment needs labels"):
        A.layer_alignment(net, x, layers=["1"])


# ----------------------------------------------------------------------------- peaks
def test_peaks_has_120_distinct_label_functions_that_know_their_variables():
    ts = peaks.tasks()
    assert len(ts) == 120 == len({t.variables for t in ts})
    assert ts[0].name == "P_{A,B,C}" and ts[-1].name == "P_{F,E,D}"
    values = peaks.sample(2000, seed=0)
    labels = np.stack([t.labels(values) for t in ts])
    assert len({row.tobytes() for row in labels}) == 120
    t = peaks.task("BDA")
    v = np.array([[0.1, 0.7, 0.2, 0.3, 0.9, 0.4], [0.8, 0.2, 0.5, 0.6, 0.1, 0.0]])
    # IF B > 0.5 THEN D ELSE A
    np.testing.assert_array_equal(t.labels(v), [0.3, 0.8])


def test_peaks_related_and_unrelated_obey_the_definitions():
    for t in peaks.tasks()[::7]:
        rel, unrel = peaks.related(t), peaks.unrelated(t)
        assert len(rel) == 5 and len(unrel) == 6
        assert all(set(r.variables) == set(t.variables) and r != t for r in rel)
        assert all(not set(u.variables) & set(t.variables) for u in unrel)
    for seed in range(20):
        s, t1, t2 = peaks.triple(seed)
        assert s.is_related(t1) and t1.variables != s.variables
        assert s.is_unrelated(t2) and set(s.variables) | set(t2.variables) == set("ABCDEF")


def test_peaks_encoding_is_the_rbf_code_with_unit_rows():
    v = peaks.sample(10, seed=1)
    X = peaks.encode(v)
    assert X.shape == (10, 60)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-12)
    # before normalisation feature (variable 2, centre 0.3) is 0.5 exp(-(v - 0.3)^2 / 0.02)
    raw = 0.5 * np.exp(-((v[:, :, None] - np.arange(10)[None, None, :] / 10) ** 2) / 0.02)
    raw = raw.reshape(10, 60)
    np.testing.assert_allclose(X, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-12)
    _, Y, _ = peaks.dataset(["ABC", "CBA"], n=500, seed=0)
    np.testing.assert_allclose(Y.mean(axis=0), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="three distinct variables out of ABCDEF"):
        peaks.task("AAB")


def test_peaks_network_and_transfer_frame():
    net = peaks.network(3, seed=0)
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU"] * 3 + ["Linear"]
    assert net[0].in_features == 60 and net[-1].out_features == 1
    df = peaks.transfer_experiment([0, 1], n=400, epochs=2, hidden_layers=1)
    assert set(df["representation"]) == {"original", "init", "transfer"}
    assert set(df["role"]) == {"source", "related", "unrelated"}
    s = peaks.summary(df, taus=[0, 5])
    assert set(s["n_seeds"]) == {2}
    lt = peaks.linear_transfer([0], n=400, n_test=100, n_train=50, epochs=1, steps=20)
    assert set(lt["role"]) == {"related", "unrelated"}
    first = lt[lt.step == 0]
    np.testing.assert_allclose(first["weight_norm"], 0.0)


# ----------------------------------------------------------------------------- plots
def test_alignment_figures_draw():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    Phi, y = _data(n=120, d=4)
    c = A.curve(Phi, y)
    assert isinstance(nc.plot.alignment_curve({"raw": c, "again": c}), Figure)
    assert isinstance(nc.plot.alignment_spectrum(c, max_index=3), Figure)
    net = _mlp()
    x = torch.randn(120, 6)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        df = A.layer_alignment(net, x, labels=(x[:, 1] > 0).long(), layers=["1", "3"],
                               checkpoints={"init": init, "trained": net.state_dict()})  # fmt: skip
    assert isinstance(nc.plot.alignment_layers(df), Figure)
    assert isinstance(nc.plot.alignment_before_after(df, layers=["1", "3"]), Figure)
    tr = peaks.transfer_experiment([0], n=300, epochs=1, hidden_layers=2)
    assert isinstance(nc.plot.alignment_transfer(tr), Figure)
    assert isinstance(nc.plot.alignment_transfer(tr, layer="all"), Figure)
    lt = peaks.linear_transfer([0], n=300, n_test=50, n_train=40, epochs=1, steps=10)
    assert isinstance(nc.plot.alignment_linear_transfer(lt), Figure)
    with pytest.raises(ValueError, match="at least two checkpoints"):
        nc.plot.alignment_before_after(df[df.checkpoint == "init"])
    with pytest.raises(TypeError, match="Expected an AlignmentCurve"):
        nc.plot.alignment_curve([c, 3])
