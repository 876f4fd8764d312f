"""The executor seam of the engine (issue 8, item 1): executors in nncompare.parallel, pair
tasks that pickle (they carry the moments, not the models), results equal to serial."""

from __future__ import annotations

import io
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare._array import to_numpy
from nncompare.analyses.engine import Outcome, PairRunner, PairTask
from nncompare.parallel import (
    ProcessExecutor,
    SerialExecutor,
    ThreadExecutor,
    check_executor,
)

MEASURES = ["cka", "cca", "svcca", "pwcca", "rsa"]
N = 200


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 7), torch.nn.ReLU()
    )


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(N, 6, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def nets():
    return _net(1), _net(2)


@pytest.fixture(scope="module")
def pool():
    """One pool of two spawned workers for the whole module (spawning costs seconds)."""
    with ProcessExecutor(2) as ex:
        yield ex


def _compare(nets, inputs, **kw):
    a, b = nets
    return nc.compare_models(
        a, b, inputs, layers_a=["0", "2"], layers_b=["1", "3"], measures=MEASURES, **kw
    )


def _same_values(got, want) -> None:
    assert list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-12, atol=1e-12)
    for col in ("layer_a", "layer_b", "measure", "error", "note"):
        if col in want:
            assert got[col].tolist() == want[col].tolist(), col


@pytest.fixture(scope="module")
def serial(nets, inputs):
    return _compare(nets, inputs)


# ---------------------------------------------------------------------- equal to serial
def test_compare_models_with_process_executor_equals_serial(nets, inputs, serial, pool):
    got = _compare(nets, inputs, executor=pool)
    _same_values(got, serial)
    for m, per in serial.attrs["spectra"].items():
        assert set(got.attrs["spectra"][m]) == set(per)
        for pair, rho in per.items():
            np.testing.assert_allclose(got.attrs["spectra"][m][pair], rho, rtol=1e-12, atol=1e-12)
    assert got.attrs["kept_dims"] == serial.attrs["kept_dims"]


def test_pairwise_with_process_executor_and_plain_pool_equals_serial(pool):
    rng = np.random.default_rng(4)
    acts = {f"l{i}": rng.standard_normal((N, 4 + 2 * i)) for i in range(3)}
    other = {f"m{i}": rng.standard_normal((N, 5 + i)) for i in range(2)}
    measures = ["cka", "cca", "procrustes", "rsa", "cka_debiased"]
    want = nc.pairwise(acts, other, measures=measures)
    got = nc.pairwise(acts, other, measures=measures, executor=pool)
    # a concurrent.futures pool as it is: it already has map(fn, items)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as plain:
        got_plain = nc.pairwise(acts, other, measures=measures, executor=plain)
    for m in measures:
        np.testing.assert_allclose(got[m], want[m], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_plain[m], want[m], rtol=1e-12, atol=1e-12)


def test_compare_checkpoints_with_process_executor_equals_serial(inputs, pool):
    model = _net(3)
    states = [_net(s).state_dict() for s in (3, 4, 5)]
    kw = {"layers": ["0", "2"], "measures": ["cka", "svcca"], "reference": "all"}
    want = nc.compare_checkpoints(model, states, inputs, **kw)
    got = nc.compare_checkpoints(model, states, inputs, executor=pool, **kw)
    _same_values(got, want)


def test_thread_and_serial_executors_equal_serial(nets, inputs, serial):
    _same_values(_compare(nets, inputs, executor=ThreadExecutor(2)), serial)
    _same_values(_compare(nets, inputs, executor=SerialExecutor()), serial)


class PicklingExecutor:
    """Ships the function and the tasks through pickle, as a process pool does."""

    def map(self, fn, items):
        fn = pickle.loads(pickle.dumps(fn))
        return [fn(pickle.loads(pickle.dumps(t))) for t in items]


def test_dft_tasks_pickle_with_their_spectral_moments():
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 4, 3, padding=1)
    )
    x = torch.randn(60, 2, 4, 4, generator=torch.Generator().manual_seed(6))
    kw = {"layers_a": ["0", "2"], "measures": ["cca", "svcca"], "conv": "dft"}
    want = nc.compare_models(net, net, x, **kw)
    got = nc.compare_models(net, net, x, executor=PicklingExecutor(), **kw)
    _same_values(got, want)


# ---------------------------------------------------------------------- pickling the moments
def _moments_values(m: nc.Moments) -> dict[str, np.ndarray]:
    names = ["mean_x", "mean_y", "cxx", "cyy", "cxy", "zxx", "zyy", "zxy", "scale_x"]
    names += ["scale_y", "min_x", "max_x", "min_y", "max_y"]
    return {k: to_numpy(getattr(m, k)) for k in names}


@pytest.mark.filterwarnings("ignore:.*constant feature")
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_moments_and_joint_moments_pickle_with_every_value(lib):
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((90, 5)) + 3.0, rng.standard_normal((90, 4))
    X[:, 1] = 2.5  # a constant feature travels as one
    if lib == "torch":
        X, Y = torch.as_tensor(X), torch.as_tensor(Y)
    m = nc.Moments()
    for s in range(0, 90, 30):
        m.update(X[s : s + 30], Y[s : s + 30])
    jm = nc.JointMoments()
    jm.update({"x": X, "y": Y})
    float(nc.svcca(jm.pair("x", "y")))  # fills the per-layer decomposition cache
    m2, jm2 = pickle.loads(pickle.dumps(m)), pickle.loads(pickle.dumps(jm))
    assert m2.n == m.n == 90 and jm2.n == jm.n == 90
    assert m2.xp is m.xp and jm2.xp is jm.xp  # the namespace is the same module again
    assert m2.product_precision == m.product_precision
    for k, v in _moments_values(m).items():
        back = getattr(m2, k)
        assert type(back) is type(getattr(m, k)), k
        np.testing.assert_array_equal(to_numpy(back), v, err_msg=k)
    assert jm2.dims == jm.dims and jm2.names == jm.names
    for attr in ("mean", "zcom", "scale"):
        np.testing.assert_array_equal(to_numpy(getattr(jm2, attr)), to_numpy(getattr(jm, attr)))
    np.testing.assert_array_equal(jm2.constant(), jm.constant())
    for measure in (nc.cca, nc.svcca, nc.cka, nc.pwcca):
        assert float(measure(m2)) == float(measure(m))
        assert float(measure(jm2.pair("x", "y"))) == float(measure(jm.pair("x", "y")))
    # the copy keeps accumulating like the original
    m.update(X[:10], Y[:10])
    m2.update(X[:10], Y[:10])
    assert float(nc.cca(m2)) == float(nc.cca(m))


# ---------------------------------------------------------------------- the seam
class RecordingExecutor:
    """Runs the tasks here, keeping the pickled function and every task it was given."""

    def __init__(self) -> None:
        self.fns: list[bytes] = []
        self.items: list[object] = []

    def map(self, fn, items):
        items = list(items)
        self.fns.append(pickle.dumps(fn))
        self.items.extend(items)
        return [fn(t) for t in items]


class _TypeRecorder(pickle.Pickler):
    """A pickler that lists the types of every object it serialises."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.seen: set[type] = set()

    def reducer_override(self, obj):
        self.seen.add(type(obj))
        return NotImplemented


def test_recorded_tasks_are_self_contained(nets, inputs, serial):
    a, b = (torch.nn.Sequential(*list(n)) for n in nets)
    a.load_state_dict(nets[0].state_dict())
    b.load_state_dict(nets[1].state_dict())
    ex = RecordingExecutor()
    df = _compare((a, b), inputs, executor=ex)
    _same_values(df, serial)
    assert len(ex.items) == len(df) and len(ex.fns) == len(MEASURES)
    for t in ex.items:  # small tuples of names and numbers
        assert isinstance(t, PairTask)
        assert all(isinstance(v, str | int | tuple) for v in t)
    fn = pickle.loads(ex.fns[0])
    assert isinstance(fn, PairRunner) and fn.progress is None
    rec = _TypeRecorder(io.BytesIO())
    rec.dump(fn)
    assert not any(issubclass(t, torch.nn.Module) for t in rec.seen)
    assert nc.JointMoments in rec.seen
    # the models may change or go: the recorded tasks give the same values from the moments
    with torch.no_grad():
        for p in (*a.parameters(), *b.parameters()):
            p.zero_()
    del a, b
    by_task = {(t.measure, t.index): t for t in ex.items}
    for blob in ex.fns:
        fn = pickle.loads(blob)
        for (measure, index), task in by_task.items():
            if measure not in fn.spec:
                continue
            got = fn(task)
            assert isinstance(got, Outcome)
            row = df[(df.measure == measure)].iloc[index]
            np.testing.assert_allclose(got.value, row["value"], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- bad executors
def test_executor_without_map_is_refused(nets, inputs):
    msg = r"executor must have a map\(fn, items\) method returning the results in order"
    with pytest.raises(TypeError, match=msg):
        _compare(nets, inputs, executor=object())
    with pytest.raises(TypeError, match=msg):
        nc.pairwise({"a": np.zeros((5, 2))}, measures=["cka"], executor=lambda f, x: None)
    with pytest.raises(TypeError, match=msg):
        nc.compare_checkpoints(_net(3), [_net(3).state_dict()], inputs, executor=3.5)
    with pytest.raises(TypeError, match=msg):
        check_executor(3)
    assert isinstance(check_executor(None), SerialExecutor)


class DroppingExecutor:
    def map(self, fn, items):
        return [fn(t) for t in list(items)[:-1]]


def test_executor_losing_results_is_refused(nets, inputs):
    with pytest.raises(TypeError, match=r"returned 3 result\(s\) for 4 task\(s\)"):
        _compare(nets, inputs, executor=DroppingExecutor())


def test_process_executor_checks_its_arguments():
    with pytest.raises(ValueError, match="max_workers must be a positive int or None; got 0"):
        ProcessExecutor(0)
    with pytest.raises(ValueError, match=r"chunksize must be a positive int or None; got 1\.5"):
        ProcessExecutor(chunksize=1.5)
    with pytest.raises(ValueError, match="mp_context must be one of"):
        ProcessExecutor(mp_context="threads")
    with pytest.raises(TypeError, match="a ProcessExecutor cannot be pickled"):
        pickle.dumps(ProcessExecutor(1))


def test_old_import_paths_still_work():
    from nncompare.analyses import SerialExecutor as S
    from nncompare.analyses import ThreadExecutor as T

    assert S is SerialExecutor and T is ThreadExecutor
