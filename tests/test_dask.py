"""compare_many and the Dask executor (issue #12 §1, issue #14 §1).

A 4-model × 3-layer set on a 2-worker LocalCluster gives the in-process values (to 1e-10)
for several shard sizes; every front door takes ``executor=`` names, a scheduler address
and a ``distributed.Client``; without dask, ``executor="dask"`` says how to install it.
The tests needing dask skip cleanly where it is not installed.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import nncompare as nc
from nncompare.analyses.many import merge_accumulated
from nncompare.parallel import DaskExecutor, resolve_executor

HAS_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAS_DASK, reason='needs pip install "nncompare[parallel]"')

LAYERS = ["0", "2", "4"]
MEASURES = ["cka", "cca", "svcca", "pwcca", "lr_r2"]
ATOL = 1e-10


def _net(seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 12),
        torch.nn.Tanh(),
        torch.nn.Linear(12, 6),
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m.double()  # see the note above the models fixture


# float64 networks: a float32 forward pass need not give the same bits for a batch of 2
# rows as for the same rows inside a batch of 64 (the CPU kernels block by batch size; on
# an AMD EPYC with torch 2.13 the activations differed at float32 rounding, 1e-8 in the
# values), and the tests below compare shardings of one computation to 1e-10
@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.set_num_threads(1)
    return {f"net{i}": _net(i) for i in range(4)}


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(300, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture(scope="module")
def serial(models, x) -> pd.DataFrame:
    return nc.compare_many(models, x, layers=LAYERS, measures=MEASURES, batch_size=64)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def _same_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    keys = ["model_a", "model_b", "layer_a", "layer_b", "measure"]
    got, want = got.reset_index(drop=True), want.reset_index(drop=True)
    assert got[keys].equals(want[keys])
    np.testing.assert_allclose(got["value"], want["value"], rtol=0, atol=ATOL)
    assert got["error"].isna().all() and want["error"].isna().all()


# ---------------------------------------------------------------------- compare_many itself
def test_compare_many_frame_has_every_model_pair_once(serial):
    pairs = set(zip(serial.model_a, serial.model_b, strict=True))
    assert pairs == {(f"net{i}", f"net{j}") for i in range(4) for j in range(i + 1, 4)}
    assert len(serial) == 6 * len(LAYERS) * len(MEASURES)
    assert (serial.layer_a == serial.layer_b).all()  # depth-matched by default
    assert nc.ComparisonResult.from_frame(serial).kind == "many"
    assert serial.attrs["kind"] == "many"


def test_compare_many_equals_compare_models_per_pair(models, x, serial):
    # issue #14: the model-set values are those of the two-model front door
    ref = nc.compare_models(
        models["net1"],
        models["net3"],
        x,
        layers_a=LAYERS,
        layers_b=LAYERS,
        measures=MEASURES,
        batch_size=64,
        names=("net1", "net3"),
    )
    ref = ref[ref.layer_a == ref.layer_b].set_index(["layer_a", "measure"])["value"]
    got = serial[(serial.model_a == "net1") & (serial.model_b == "net3")]
    got = got.set_index(["layer_a", "measure"])["value"]
    np.testing.assert_allclose(got.sort_index(), ref.sort_index(), rtol=0, atol=1e-12)


def test_each_model_runs_over_the_data_once(models, x):
    calls = dict.fromkeys(models, 0)
    handles = []
    for name, m in models.items():

        def count(_mod, _inp, name=name):
            calls[name] += 1

        handles.append(m.register_forward_pre_hook(count))
    try:
        nc.compare_many(models, x, layers=LAYERS, measures=["cka"], batch_size=100)
    finally:
        for h in handles:
            h.remove()
    assert calls == dict.fromkeys(models, 3)  # 300 samples, batches of 100: not per pair


def test_all_layer_pairs_and_per_model_layers(models, x):
    df = nc.compare_many(
        list(models.values())[:3], x, layers=["0", "4"], pairs="all", measures=["cka"]
    )
    assert set(df.model_a) | set(df.model_b) == {"0", "1", "2"}
    assert len(df) == 3 * 2 * 2
    by_pos = nc.compare_many(
        {"a": models["net0"], "b": models["net1"]},
        x,
        layers={"a": ["0", "2"], "b": ["2", "4"]},
        measures=["cka"],
    )
    assert list(zip(by_pos.layer_a, by_pos.layer_b, strict=True)) == [("0", "2"), ("2", "4")]


def test_checkpoints_with_a_factory(models, x, serial, tmp_path):
    torch.save(models["net2"].state_dict(), tmp_path / "net2.pt")
    ckpts = {
        "net0": models["net0"].state_dict(),
        "net1": {"state_dict": models["net1"].state_dict()},
        "net2": tmp_path / "net2.pt",
        "net3": models["net3"],  # a module as it is
    }
    got = nc.compare_many(
        ckpts, x, layers=LAYERS, measures=MEASURES, batch_size=64, factory=lambda: _net(42)
    )
    _same_values(got, serial)
    with pytest.raises(
        TypeError,
        match=r"models\['net0'\] must be a torch.nn.Module; got OrderedDict. For checkpoints",
    ):
        nc.compare_many(ckpts, x)
    with pytest.raises(TypeError, match=r"factory must be a callable returning a fresh"):
        nc.compare_many(ckpts, x, factory=_net(1).state_dict())


def test_depth_matched_pairs_accumulate_one_joint_product_per_depth(models, x, monkeypatch):
    import nncompare.analyses.many as many
    from nncompare.analyses.engine import capture_sources, compute_pair

    seen = []

    def spy(*args, **kwargs):
        seen.append(capture_sources(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(many, "capture_sources", spy)
    nc.compare_many(models, x, layers=LAYERS, measures=["cka"])
    nc.compare_many(models, x, layers=LAYERS, measures=["cka"], pairs="all")
    by_depth, joint = seen
    assert len(by_depth.groups) == 3  # one per layer: 4 x 16, 4 x 12, 4 x 6 features
    assert {jm.comoment.shape for jm in by_depth.groups.values()} == {(64, 64), (48, 48), (24, 24)}
    assert [jm.comoment.shape for jm in joint.groups.values()] == [(136, 136)]  # all at once
    with pytest.raises(ValueError, match=r"were accumulated in different joint moments"):
        compute_pair(by_depth, (("net0", "0"), ("net1", "2")), "cka", {}, None)


def test_sharded_capture_in_process_equals_one_pass(models, x, serial):
    for shard in (2, 37, 300):
        got = nc.compare_many(
            models, x, layers=LAYERS, measures=MEASURES, batch_size=64, shard_size=shard
        )
        _same_values(got, serial)


def test_shards_on_threads_equal_one_pass(models, x, serial):
    got = nc.compare_many(
        models,
        x,
        layers=LAYERS,
        measures=MEASURES,
        batch_size=64,
        shard_size=50,
        executor="threads",
    )
    _same_values(got, serial)


def test_kernel_measures_keep_arrays_across_shards(models, x):
    kw = dict(layers=["2"], measures=["cka_debiased", "rsa"], batch_size=64)
    one = nc.compare_many(models, x, **kw)
    got = nc.compare_many(models, x, shard_size=70, **kw)
    _same_values(got, one)


def test_compare_many_refuses_bad_input(models, x):
    with pytest.raises(ValueError, match=r"compare_many needs at least two models; got 1"):
        nc.compare_many({"a": models["net0"]}, x)
    with pytest.raises(TypeError, match=r"models\['b'\] must be a torch.nn.Module; got int"):
        nc.compare_many({"a": models["net0"], "b": 3}, x)
    with pytest.raises(ValueError, match=r"pairs"):
        nc.compare_many(models, x, pairs="diagonal")
    with pytest.raises(ValueError, match=r"needs an entry for every model; missing \['net1'"):
        nc.compare_many(models, x, layers={"net0": ["0"]})
    with pytest.raises(ValueError, match=r"pairs='matched' pairs the i-th layer"):
        nc.compare_many(
            {"a": models["net0"], "b": models["net1"]}, x, layers={"a": ["0"], "b": ["0", "2"]}
        )
    with pytest.raises(ValueError, match=r"shard_size must be a positive int or None; got 0"):
        nc.compare_many(models, x, shard_size=0)


def test_merge_refuses_dft_moments():
    from nncompare.analyses.engine import Accumulated

    with pytest.raises(ValueError, match=r"conv='dft' moments do not merge"):
        merge_accumulated(Accumulated(spectral={(2,): object()}), Accumulated())


# ---------------------------------------------------------------------- executor names
def test_executor_names_resolve():
    from nncompare.parallel import ProcessExecutor, SerialExecutor, ThreadExecutor

    assert resolve_executor(None) == (None, False)
    assert isinstance(resolve_executor("threads")[0], ThreadExecutor)
    assert isinstance(resolve_executor("serial")[0], SerialExecutor)
    ex, owned = resolve_executor("processes")
    assert isinstance(ex, ProcessExecutor) and owned
    ex.close()
    mine = ThreadExecutor()
    assert resolve_executor(mine) == (mine, False)
    with pytest.raises(ValueError, match=r"executor must be None, one of 'serial', 'threads'"):
        resolve_executor("gpu")


def test_dask_without_dask_says_how_to_install(monkeypatch, models, x):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    msg = (
        r"needs dask.distributed, which is not installed; install it with "
        r'pip install "nncompare\[parallel\]"'
    )
    with pytest.raises(ImportError, match=msg):
        resolve_executor("dask")
    with pytest.raises(ImportError, match=msg):
        nc.compare_many(models, x, layers=LAYERS, measures=["cka"], executor="dask")
    with pytest.raises(ImportError, match=msg):
        nc.pairwise({"a": np.ones((5, 2))}, measures=["cka"], executor="tcp://127.0.0.1:1")
    # everything else still works
    df = nc.compare_many(models, x, layers=["0"], measures=["cka"], executor="threads")
    assert len(df) == 6


def test_dask_executor_refuses_bad_arguments():
    with pytest.raises(TypeError, match=r"client must be a distributed.Client; got str"):
        DaskExecutor("tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"n_workers must be a positive int; got 0"):
        DaskExecutor(n_workers=0)
    with pytest.raises(ValueError, match=r"chunksize must be a positive int or None; got 2.5"):
        DaskExecutor(n_workers=1, chunksize=2.5)


# ---------------------------------------------------------------------- on a LocalCluster
@needs_dask
def test_four_models_three_layers_on_two_workers_equal_in_process(client, models, x, serial):
    assert len(client.scheduler_info()["workers"]) == 2
    for shard in (None, 29, 150):  # None: ceil(n / (2 x workers))
        got = nc.compare_many(
            models,
            x,
            layers=LAYERS,
            measures=MEASURES,
            batch_size=64,
            executor=client,
            shard_size=shard,
        )
        _same_values(got, serial)


@needs_dask
def test_dask_client_and_address_on_every_front_door(client, models, x):
    kw = dict(layers_a=LAYERS, layers_b=LAYERS, measures=["cka", "svcca"], batch_size=64)
    one = nc.compare_models(models["net0"], models["net1"], x, **kw)
    for ex in (client, client.scheduler.address, DaskExecutor(client, chunksize=1)):
        got = nc.compare_models(models["net0"], models["net1"], x, executor=ex, **kw)
        np.testing.assert_allclose(got["value"], one["value"], rtol=0, atol=ATOL)
    ck = [_net(5).state_dict(), _net(6).state_dict()]
    one = nc.compare_checkpoints(_net(0), ck, x, layers=LAYERS, measures=["cca"])
    got = nc.compare_checkpoints(_net(0), ck, x, layers=LAYERS, measures=["cca"], executor=client)
    np.testing.assert_allclose(got["value"], one["value"], rtol=0, atol=ATOL)
    acts = {k: np.random.default_rng(i).normal(size=(60, 4)) for i, k in enumerate("abc")}
    one = nc.pairwise(acts, measures=["cka"])
    got = nc.pairwise(acts, measures=["cka"], executor=client.scheduler.address)
    np.testing.assert_allclose(got["cka"], one["cka"], rtol=0, atol=ATOL)
    assert not client.status == "closed"  # the caller's client is left open
    with pytest.raises(TypeError, match=r"executor must have a map\(fn, items\) method"):
        nc.pairwise(acts, measures=["cka"], executor=client.cluster)  # not a client


@needs_dask
def test_executor_dask_starts_and_closes_a_local_cluster(models, x, serial):
    ex = DaskExecutor(n_workers=2)
    with ex:
        got = nc.compare_many(
            models, x, layers=LAYERS, measures=MEASURES, batch_size=64, executor=ex
        )
        client = ex.client
        assert len(client.scheduler_info()["workers"]) == 2
    _same_values(got, serial)
    assert client.status == "closed"
    got = nc.compare_many(models, x, layers=["0"], measures=["cka"], executor="dask")
    _same_values(got, serial[(serial.layer_a == "0") & (serial.measure == "cka")])


@needs_dask
def test_dask_progress_counts_every_pair_and_shard(client, models, x, capsys):
    nc.compare_many(
        models,
        x,
        layers=LAYERS,
        measures=["cka", "cca"],
        batch_size=64,
        executor=client,
        shard_size=100,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "[1/2] capture" in err and "3/3" in err  # shards
    assert "[2/2] measures" in err and "36/36" in err  # 6 model pairs x 3 layers x 2
