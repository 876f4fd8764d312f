"""The comparison engine (issue 8, section 1): one path for pairwise, compare_models and
compare_checkpoints, an executor seam for the pair tasks, and one ComparisonResult."""

from __future__ import annotations

import copy
import json
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import nncompare as nc
from nncompare._validation import NNCompareWarning
from nncompare.analyses import SerialExecutor, ThreadExecutor
from nncompare.analyses.engine import PairTask
from nncompare.results import MeasureRecord
from nncompare.workbench.models import MLP


class RecordingExecutor:
    """An executor that evaluates serially and remembers every task it was given."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.calls = 0

    def map(self, fn, items):
        items = list(items)
        self.calls += 1
        self.items.extend(items)
        return [fn(i) for i in items]


def _net_with_constant_feature() -> torch.nn.Module:
    """Linear(6, 8) whose first output is always 0: a constant feature in layer "0"."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
    with torch.no_grad():
        net[0].weight[0].zero_()
        net[0].bias[0] = 0.5
    return net


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(80, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(2)
    return _net_with_constant_feature(), MLP(6, (8,), 5)


MEASURES = ["cka", "cca", "svcca", "rsa"]
LAYERS_A = ["0", "2"]
LAYERS_B = ["fc1", "relu1", "fc2"]


def _compare(nets, inputs, **kw):
    a, b = nets
    return nc.compare_models(
        a, b, inputs, layers_a=LAYERS_A, layers_b=LAYERS_B, measures=MEASURES, **kw
    )


@pytest.fixture(scope="module")
def serial(nets, inputs):
    return _compare(nets, inputs)


def _same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-12, atol=0)
    for col in ("model_a", "layer_a", "layer_b", "measure", "error", "note"):
        assert got[col].tolist() == want[col].tolist(), col


def test_custom_executor_receives_every_pair_task_of_compare_models(nets, inputs, serial):
    ex = RecordingExecutor()
    df = _compare(nets, inputs, executor=ex)
    n_pairs = len(LAYERS_A) * len(LAYERS_B)
    assert len(ex.items) == n_pairs * len(MEASURES) == len(df)
    assert ex.calls == len(MEASURES)  # one map per measure, over all its pairs
    want = {(m, ("A", a), ("B", b)) for m in MEASURES for a in LAYERS_A for b in LAYERS_B}
    assert {(t.measure, t.a, t.b) for t in ex.items} == want
    assert all(isinstance(t, PairTask) for t in ex.items)
    _same_frame(df, serial)


def test_thread_executor_equals_serial(nets, inputs, serial):
    df = _compare(nets, inputs, executor=ThreadExecutor(max_workers=3))
    _same_frame(df, serial)
    df = _compare(nets, inputs, executor=SerialExecutor())
    _same_frame(df, serial)


class PicklingExecutor:
    """Ships the task function and every task through pickle, as a process pool or a
    Dask cluster does, and runs the copies."""

    def map(self, fn, items):
        fn = pickle.loads(pickle.dumps(fn))
        return [fn(pickle.loads(pickle.dumps(t))) for t in items]


class CopyingExecutor:
    """Runs a copy of the task function (what it carries to another process: no
    progress display)."""

    def map(self, fn, items):
        fn = copy.copy(fn)
        assert fn.progress is None
        return [fn(t) for t in items]


def test_array_tasks_survive_pickling_for_out_of_process_executors():
    """Nothing process-local (locks, caches' locks) rides along with the tasks of the
    kernel measures; the values come back equal."""
    rng = np.random.default_rng(3)
    acts = {f"l{i}": rng.standard_normal((40, 3 + i)) for i in range(3)}
    measures = ["rsa", "cka_debiased", "mutual_knn"]
    want = nc.pairwise(acts, measures=measures)
    got = nc.pairwise(acts, measures=measures, executor=PicklingExecutor())
    for m in measures:
        np.testing.assert_allclose(got[m], want[m], rtol=1e-12)


def test_progress_counts_tasks_that_ran_elsewhere(nets, inputs, serial, capsys):
    df = _compare(nets, inputs, executor=CopyingExecutor(), progress=True)
    np.testing.assert_allclose(df["value"], serial["value"], rtol=1e-12, atol=0)
    n = len(LAYERS_A) * len(LAYERS_B) * len(MEASURES)
    states = [s for s in re.split(r"[\r\n]", capsys.readouterr().err) if "measures" in s]
    assert f"{n}/{n}" in states[-1]


def test_measure_warnings_become_notes_with_every_executor(nets, inputs, serial):
    """The constant feature of layer "0" is a note on its CCA rows (not a printed warning),
    on the same rows whichever thread evaluated them."""
    cca0 = serial.query("measure == 'cca' and layer_a == '0'")
    assert cca0["note"].str.contains(r"X has 1 constant feature\(s\) out of 8").all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = _compare(nets, inputs, executor=ThreadExecutor(max_workers=4))
    assert not [w for w in caught if issubclass(w.category, NNCompareWarning)]
    assert df["note"].tolist() == serial["note"].tolist()


def test_compare_checkpoints_runs_through_the_executor(inputs):
    def mlp(seed: int) -> MLP:
        torch.manual_seed(seed)
        return MLP(6, (8,), 3)

    net, states = mlp(0), [mlp(seed).state_dict() for seed in range(3)]
    kw = dict(layers=["relu1", "fc2"], measures=["cka", "cca"])
    want = nc.compare_checkpoints(net, states, inputs, **kw)
    ex = RecordingExecutor()
    got = nc.compare_checkpoints(net, states, inputs, executor=ex, **kw)
    assert len(ex.items) == 2 * 3 * 2 == len(got)  # layers × checkpoints × measures
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-12)
    assert list(got.columns) == list(want.columns)
    # the reference is the last checkpoint: identical there
    last = got.query("checkpoint == '2'")
    np.testing.assert_allclose(last["value"], 1.0, atol=1e-9)


def test_pairwise_tasks_go_through_the_executor():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((60, 8))
    acts_a = {f"a{i}": z @ rng.standard_normal((8, 7)) for i in range(3)}
    acts_b = {f"b{i}": np.tanh(z @ rng.standard_normal((8, 6))) for i in range(2)}
    measures = ["cca", "rsa", "cka_debiased", "procrustes"]
    want = nc.pairwise(acts_a, acts_b, measures=measures)
    ex = RecordingExecutor()
    got = nc.pairwise(acts_a, acts_b, measures=measures, executor=ex)
    assert len(ex.items) == 3 * 2 * len(measures)
    threaded = nc.pairwise(acts_a, acts_b, measures=measures, executor=ThreadExecutor(2))
    for m in measures:
        np.testing.assert_allclose(got[m], want[m], rtol=1e-12)
        np.testing.assert_allclose(threaded[m], want[m], rtol=1e-12)
        # reference: each cell is the measure itself on that pair
        np.testing.assert_allclose(
            want[m][1, 0], float(getattr(nc, m)(acts_a["a1"], acts_b["b0"])), rtol=1e-6
        )


def test_pairwise_symmetric_grid_evaluates_each_unordered_pair_once():
    rng = np.random.default_rng(1)
    acts = {f"l{i}": rng.standard_normal((50, 4 + i)) for i in range(4)}
    ex = RecordingExecutor()
    grid = nc.pairwise(acts, measures=["cca"], executor=ex)
    assert len(ex.items) == 4 * 5 // 2  # diagonal and above; below is mirrored
    np.testing.assert_allclose(grid["cca"], grid["cca"].T, rtol=0, atol=0)


def test_executor_without_map_is_refused(nets, inputs):
    with pytest.raises(TypeError, match=r"executor must have a map\(fn, items\) method"):
        _compare(nets, inputs, executor=object())
    with pytest.raises(TypeError, match=r"executor must have a map\(fn, items\) method"):
        nc.pairwise({"a": np.zeros((5, 2))}, measures=["cka"], executor=lambda f, x: None)


def test_comparison_result_is_the_typed_view_of_the_frame(serial):
    res = nc.ComparisonResult.from_frame(serial)
    assert res.kind == "models" and res.names == ("A", "B")
    assert res.layers_a == LAYERS_A and res.layers_b == LAYERS_B
    assert res.n_samples == 80
    assert set(res.measures) == set(MEASURES)
    assert isinstance(res.measures["svcca"], MeasureRecord)
    assert res.measures["svcca"].higher_is_better is True
    assert res.measures["cka"].streaming is True and res.measures["rsa"].streaming is False
    # pairs keyed by tuples, as the frame's layer columns say
    assert set(res.spectra["cca"]) == {(a, b) for a in LAYERS_A for b in LAYERS_B}
    assert set(res.kept_dims) == {(a, b) for a in LAYERS_A for b in LAYERS_B}
    kx, ky = res.kept_dims[("2", "fc2")]
    row = serial.query("measure == 'svcca' and layer_a == '2' and layer_b == 'fc2'")
    assert (kx, ky) == (row["kept_dims_x"].item(), row["kept_dims_y"].item())
    assert res.provenance["conv_policy"] == "mean"
    assert res.title == "A vs B"
    # back to the frame: the same attrs; the frame's interface
    assert json.dumps(res.attrs, sort_keys=True, default=str) == json.dumps(
        serial.attrs, sort_keys=True, default=str
    )
    assert len(res) == len(serial)
    assert res["value"].equals(serial["value"])
    assert len(res.query("measure == 'cka'")) == len(LAYERS_A) * len(LAYERS_B)
    assert nc.ComparisonResult.from_frame(res) is res


def test_comparison_result_of_checkpoints_and_bare_frames():
    df = pd.DataFrame(
        {
            "checkpoint": ["0", "1"],
            "reference": ["1", "1"],
            "layer": ["fc", "fc"],
            "measure": ["cka", "cka"],
            "value": [0.5, 1.0],
            "n_samples": [10, 10],
        }
    )
    res = nc.ComparisonResult.from_frame(df)
    assert res.kind == "checkpoints" and res.names == ("0", "1")
    assert res.layers_a == res.layers_b == ["fc"] and res.n_samples == 10
    assert res.measures == {} and res.spectra == {} and res.title is None
    assert set(res.attrs) == {"provenance", "measures"}


def test_report_and_plots_read_a_comparison_result(serial, tmp_path):
    res = nc.ComparisonResult.from_frame(serial[serial.measure.isin(["cka", "cca"])].copy())
    res.measures = {m: v for m, v in nc.ComparisonResult.from_frame(serial).measures.items()}
    rep = nc.report.write_report(res, tmp_path / "r")
    doc = json.loads(rep.json.read_text(encoding="utf-8"))
    assert len(doc["records"]) == len(LAYERS_A) * len(LAYERS_B) * 2
    assert doc["attrs"]["measures"]["cka"]["higher_is_better"] is True
    fig = nc.plot.heatmap(res, "cka")
    assert fig is not None


def test_every_figure_reads_a_comparison_result(serial):
    """The figures read a ComparisonResult as they read its frame (same data drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    res = nc.ComparisonResult.from_frame(serial)
    for draw in (
        lambda d: nc.plot.heatmap(d, "svcca"),
        lambda d: nc.plot.layer_profile(d, "cka"),
        lambda d: nc.plot.spectrum(d, "cca"),
        lambda d: nc.plot.kept_dims(d),
    ):
        from_result, from_frame = draw(res), draw(serial)
        got = [ax.get_title() for ax in from_result.axes]
        assert got == [ax.get_title() for ax in from_frame.axes] and got


def test_from_frame_refuses_what_is_not_a_comparison_frame():

    with pytest.raises(TypeError, match=r"expects the DataFrame returned by compare_models"):
        nc.ComparisonResult.from_frame(None)
    with pytest.raises(TypeError, match=r"got DataFrame with columns \['a'\]"):
        nc.ComparisonResult.from_frame(pd.DataFrame({"a": [1]}))


def test_array_sources_refuses_labels_that_would_merge_two_arrays():
    from nncompare.analyses.engine import array_sources

    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"array labels must be distinct; got \['x', 'x'\]"):
        array_sources(
            {("a", "p"): X, ("b", "q"): X}, streaming=True, names={("a", "p"): "x", ("b", "q"): "x"}
        )
