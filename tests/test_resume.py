"""Resumable runs (issue #12 §1): the result store, kill -9 mid-way, and ``--resume DIR``.

A model-set run in a subprocess is killed with SIGKILL once some model pairs are stored;
the resumed run computes only what is missing (every task it maps is counted), loses
nothing stored, and its frame equals an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nncompare as nc
from nncompare.analyses._store import FILE, ResultStore

# the model set: written to the subprocess's script and executed here alike
SETUP = textwrap.dedent(
    """
    import torch

    torch.set_num_threads(1)


    def net(seed):
        g = torch.Generator().manual_seed(seed)
        m = torch.nn.Sequential(
            torch.nn.Linear(6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 8), torch.nn.Tanh()
        )
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        return m


    MODELS = {f"net{i}": net(i) for i in range(6)}
    X = torch.randn(200, 6, generator=torch.Generator().manual_seed(7))
    KW = dict(layers=["0", "2", "3"], measures=["cka", "svcca"], batch_size=50)
    """
)

SLOW_RUN = textwrap.dedent(
    """
    import sys
    import time

    import nncompare as nc


    class Slow:  # every task takes a while, so that the run can be killed mid-way
        def map(self, fn, items):
            out = []
            for item in items:
                time.sleep(0.15)
                out.append(fn(item))
            return out


    nc.compare_many(MODELS, X, resume=sys.argv[1], executor=Slow(), **KW)
    print("finished")
    """
)

N_PAIRS = 15  # 6 models
ROWS_PER_PAIR = 3 * 2  # layers x measures


class Recording:
    """Runs the tasks in this process and keeps every one it was given."""

    def __init__(self) -> None:
        self.items: list = []

    def map(self, fn, items):
        items = list(items)
        self.items += items
        return [fn(t) for t in items]


@pytest.fixture(scope="module")
def setup() -> dict:
    env: dict = {}
    exec(SETUP, env)  # the test's own model set
    return env


def _stored(directory: Path) -> int:
    path = directory / FILE
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


@pytest.mark.slow
def test_kill_9_mid_way_then_resume_recomputes_nothing_stored(tmp_path, setup):
    store = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(SETUP + SLOW_RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _stored(store) < 3 * ROWS_PER_PAIR:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run stored nothing within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _stored(store)
    assert 3 * ROWS_PER_PAIR <= before < N_PAIRS * ROWS_PER_PAIR  # killed mid-way
    assert before % ROWS_PER_PAIR == 0  # whole model pairs only: each is one transaction
    with sqlite3.connect(store / FILE) as conn:
        kept = dict(conn.execute("SELECT key, row FROM rows").fetchall())

    rec = Recording()
    resumed = nc.compare_many(
        setup["MODELS"], setup["X"], resume=store, executor=rec, **setup["KW"]
    )
    assert len(rec.items) == N_PAIRS * ROWS_PER_PAIR - before  # nothing stored recomputed
    with sqlite3.connect(store / FILE) as conn:
        after = dict(conn.execute("SELECT key, row FROM rows").fetchall())
    assert len(after) == N_PAIRS * ROWS_PER_PAIR
    assert all(after[k] == v for k, v in kept.items())  # nothing lost or rewritten
    done = {(r.model_a, r.model_b) for r in resumed.itertuples()}
    recomputed = {(t.a[0], t.b[0]) for t in rec.items}
    assert len(done) == N_PAIRS and len(recomputed) == N_PAIRS - before // ROWS_PER_PAIR

    whole = nc.compare_many(setup["MODELS"], setup["X"], **setup["KW"])
    pd.testing.assert_frame_equal(resumed, whole)

    rec = Recording()
    again = nc.compare_many(setup["MODELS"], setup["X"], resume=store, executor=rec, **setup["KW"])
    assert rec.items == []  # all stored: no task, no capture
    pd.testing.assert_frame_equal(again, whole)


def test_changed_model_or_options_recompute_only_their_rows(tmp_path, setup):
    models = dict(list(setup["MODELS"].items())[:3])
    kw = setup["KW"]
    nc.compare_many(models, setup["X"], resume=tmp_path, **kw)
    changed = {**models, "net2": setup["net"](99)}  # new weights under the same label
    rec = Recording()
    df = nc.compare_many(changed, setup["X"], resume=tmp_path, executor=rec, **kw)
    assert {(t.a[0], t.b[0]) for t in rec.items} == {("net0", "net2"), ("net1", "net2")}
    pd.testing.assert_frame_equal(df, nc.compare_many(changed, setup["X"], **kw))
    rec = Recording()
    opts = {**kw, "measures": {"cka": {}, "svcca": {"variance": 0.9}}}
    nc.compare_many(models, setup["X"], resume=tmp_path, executor=rec, **opts)
    assert {t.measure for t in rec.items} == {"svcca"}  # new options: new rows
    rec = Recording()
    nc.compare_many(models, setup["X"][:150], resume=tmp_path, executor=rec, **kw)
    assert len(rec.items) == 3 * ROWS_PER_PAIR  # other data: everything anew


def test_compare_models_resume_equals_a_fresh_run(tmp_path, setup):
    a, b = setup["MODELS"]["net0"], setup["MODELS"]["net1"]
    kw = dict(layers_a=["0", "2"], layers_b=["2", "3"], measures=["cka", "svcca", "rsa"])
    whole = nc.compare_models(a, b, setup["X"], **kw)
    first = nc.compare_models(a, b, setup["X"], resume=tmp_path, **kw)
    rec = Recording()
    again = nc.compare_models(a, b, setup["X"], resume=tmp_path, executor=rec, **kw)
    assert rec.items == []
    for df in (first, again):
        pd.testing.assert_frame_equal(df, whole)
        for key in ("spectra", "kept_dims", "measures"):
            assert df.attrs[key] == whole.attrs[key], key
    with pytest.raises(ValueError, match=r"resume stores the values only, not ci"):
        nc.compare_models(a, b, setup["X"], resume=tmp_path, ci=0.9, **kw)


def test_resume_refuses_what_it_cannot_store(tmp_path, setup):
    models = dict(list(setup["MODELS"].items())[:2])
    afile = tmp_path / "a_file"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"resume expects a directory"):
        nc.compare_many(models, setup["X"], resume=afile, **setup["KW"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match=r"is not an nncompare result store"):
        ResultStore(bad)
    batches = (setup["X"][i : i + 50] for i in range(0, 200, 50))
    with pytest.raises(ValueError, match=r"resume needs data that can be read more than once"):
        nc.compare_many(models, batches, resume=tmp_path / "s", **setup["KW"])


def test_store_round_trips_nan_errors_and_notes(tmp_path, setup):
    x = setup["X"].clone()
    x[:, 0] = 1.0  # a constant input feature: the first layer's outputs stay full rank
    models = dict(list(setup["MODELS"].items())[:2])
    kw = dict(layers=["3"], measures={"svcca": {"dims": 50}, "cca": {}})
    whole = nc.compare_many(models, x, **kw)
    svcca = whole[whole.measure == "svcca"].iloc[0]
    assert np.isnan(svcca["value"]) and "dims" in svcca["error"]  # an error row
    nc.compare_many(models, x, resume=tmp_path, **kw)
    again = nc.compare_many(models, x, resume=tmp_path, **kw)
    pd.testing.assert_frame_equal(again, whole)


def test_cli_compare_resume(tmp_path):
    import torch
    from click.testing import CliRunner

    from nncompare.cli.main import cli
    from nncompare.models import SmallCNN

    rng = np.random.default_rng(0)
    data = tmp_path / "x.npz"
    np.savez(data, x=rng.random((120, 1, 8, 8)).astype(np.float32))
    store = tmp_path / "store"
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        weights.append(tmp_path / f"w{seed}.pt")
        torch.save(SmallCNN().state_dict(), weights[-1])

    def run(out: str) -> pd.DataFrame:
        res = CliRunner().invoke(
            cli,
            [
                "compare",
                "nncompare.models:SmallCNN()",
                "nncompare.models:SmallCNN()",
                "--weights-a",
                str(weights[0]),
                "--weights-b",
                str(weights[1]),
                "--data",
                str(data),
                "--measure",
                "cka",
                "--layers-a",
                "relu1,fc",
                "--layers-b",
                "relu2,fc",
                "--resume",
                str(store),
                "--out",
                str(tmp_path / out),
                "--no-progress",
            ],
        )
        assert res.exit_code == 0, res.output
        return pd.read_csv(tmp_path / out / "results.csv")

    first = run("r1")
    with sqlite3.connect(store / FILE) as conn:
        rows = conn.execute("SELECT key, stored FROM rows").fetchall()
    assert len(rows) == 4
    second = run("r2")
    with sqlite3.connect(store / FILE) as conn:
        assert conn.execute("SELECT key, stored FROM rows").fetchall() == rows  # read, not redone
    pd.testing.assert_series_equal(first["value"], second["value"])


def test_resume_with_a_dataset(tmp_path, setup):
    from torch.utils.data import TensorDataset

    models = dict(list(setup["MODELS"].items())[:3])
    data = TensorDataset(setup["X"])  # not sliceable: the layers are known after capture
    whole = nc.compare_many(models, setup["X"], **setup["KW"])
    first = nc.compare_many(models, data, resume=tmp_path, **setup["KW"])
    rec = Recording()
    again = nc.compare_many(models, data, resume=tmp_path, executor=rec, **setup["KW"])
    assert rec.items == []
    pd.testing.assert_frame_equal(first, whole)
    pd.testing.assert_frame_equal(again, whole)
