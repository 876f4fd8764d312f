"""The activation cache under attack (issue 6, items 12-15).

A flipped byte, a changed sample, a changed model attribute or a killed writer must never
give a silently wrong or stale cache.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nncompare.capture import (
    InvalidCacheError,
    StaleCacheError,
    _cache,
    capture,
    load_cache,
    model_fingerprint,
)
from nncompare.capture._cache import (
    WRITER_FILE,
    _CacheWriter,
    _process_start_time,
    _writer_record,
    probe_difference,
    probe_summary,
    remove_stale_partials,
)

# --------------------------------------------------------------------------- helpers


class MLP(nn.Module):
    """Counts its forward calls (a bookkeeping attribute that must not break reuse)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.LeakyReLU(0.1)
        self.fc2 = nn.Linear(8, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc2(self.act(self.fc1(x)))


class Scaled(nn.Module):
    """``forward`` reads a plain attribute and a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(6, 4)
        self.scale = 1.0
        self.register_buffer("shift", torch.zeros(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale + self.shift


def rows(n: int = 500, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))


def layer_file(path: Path, index: int = 0) -> tuple[Path, int]:
    """A layer's .npy file and the offset of its data region."""
    manifest = json.loads((path / "manifest.json").read_text())
    fpath = path / manifest["layers"][index]["file"]
    return fpath, _cache._npy_data_offset(fpath)


def flip_byte(fpath: Path, position: int) -> None:
    data = bytearray(fpath.read_bytes())
    data[position] ^= 0x5A
    fpath.write_bytes(bytes(data))


# --------------------------------------------------------------------------- item 12


def test_flipped_byte_in_the_data_is_refused(tmp_path):
    model, x = MLP(), rows(40)
    path = tmp_path / "acts"
    first = capture(model, x, ["fc1", "fc2"], cache_dir=path, batch_size=16)
    good = np.array(first["fc2"])
    fpath, offset = layer_file(path, 1)
    flip_byte(fpath, offset + 4 * 7 + 1)  # a byte of element (2, 1) of fc2

    with pytest.raises(InvalidCacheError, match=r"is corrupt: bytes 0-480 .*chunk 0.*'fc2'"):
        load_cache(path)
    with pytest.raises(InvalidCacheError, match=r"is corrupt.*Delete the cache directory"):
        load_cache(path, mmap=False)
    # automatic reuse does not load it either, nor replace it on its own
    with pytest.raises(InvalidCacheError, match=r"corrupt.*overwrite=True"):
        capture(model, x, ["fc1", "fc2"], cache_dir=path, batch_size=16)
    # unverified loading is possible on request, and shows the damage
    damaged = load_cache(path, verify=False)
    assert not np.array_equal(np.array(damaged["fc2"]), good)
    # overwrite=True rebuilds it
    again = capture(model, x, ["fc1", "fc2"], cache_dir=path, batch_size=16, overwrite=True)
    np.testing.assert_array_equal(np.array(load_cache(path)["fc2"]), good)
    np.testing.assert_array_equal(np.array(again["fc2"]), good)


def test_every_chunk_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(_cache, "CHUNK_BYTES", 100)  # 40 x 8 float32 = 1280 bytes: 13 chunks
    model, x = MLP(), rows(40)
    path = tmp_path / "acts"
    capture(model, x, ["fc1"], cache_dir=path, batch_size=7)
    checksum = json.loads((path / "manifest.json").read_text())["layers"][0]["checksum"]
    assert checksum["algorithm"] == "blake2b-128" and checksum["chunk_bytes"] == 100
    assert len(checksum["chunks"]) == 13
    load_cache(path)  # intact: loads
    fpath, offset = layer_file(path)
    flip_byte(fpath, offset + 1279)  # the last byte, in the short last chunk
    with pytest.raises(InvalidCacheError, match=r"bytes 1200-1280 .*\(chunk 12\)"):
        load_cache(path)


def test_trailing_bytes_and_missing_checksums_are_refused(tmp_path):
    model, x = MLP(), rows(10)
    path = tmp_path / "acts"
    capture(model, x, ["fc2"], cache_dir=path)
    fpath, _ = layer_file(path)
    with open(fpath, "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(InvalidCacheError, match=r"corrupt: 128 data bytes where 120"):
        load_cache(path)

    old = tmp_path / "v1"
    capture(model, x, ["fc2"], cache_dir=old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["format_version"] = 1  # as written before checksums existed
    for entry in manifest["layers"]:
        del entry["checksum"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidCacheError, match=r"no checksums.*verify=False"):
        load_cache(old)
    assert load_cache(old, verify=False)["fc2"].shape == (10, 3)


# --------------------------------------------------------------------------- item 13


@pytest.mark.parametrize("kind", ["tensor", "numpy", "pair"])
def test_changing_row_100_of_500_invalidates_the_cache(tmp_path, kind):
    model = MLP()
    x = rows(500)
    changed = x.clone()
    changed[100, 3] += 1e-3

    def wrap(t: torch.Tensor):
        if kind == "numpy":
            return t.numpy()
        if kind == "pair":
            return (t, torch.zeros(len(t)))
        return t

    path = tmp_path / "acts"
    capture(model, wrap(x), ["fc2"], cache_dir=path, batch_size=64)
    with pytest.raises(
        StaleCacheError, match=r"does not match this capture: the input data differ"
    ):
        capture(model, wrap(changed), ["fc2"], cache_dir=path, batch_size=64)
    # the same data in other batches is the same data: reused without a forward pass
    calls = model.calls
    again = capture(model, wrap(x.clone()), ["fc2"], cache_dir=path, batch_size=50)
    assert model.calls == calls + 1  # the probe only
    assert again.n_samples == 500


def test_max_samples_limits_what_is_hashed(tmp_path):
    model, x = MLP(), rows(50)
    path = tmp_path / "acts"
    capture(model, x, ["fc2"], cache_dir=path, max_samples=20)
    later = x.clone()
    later[30] += 1  # beyond max_samples: not part of the capture
    assert capture(model, later, ["fc2"], cache_dir=path, max_samples=20).n_samples == 20
    later[19] += 1
    with pytest.raises(StaleCacheError, match="input data differ"):
        capture(model, later, ["fc2"], cache_dir=path, max_samples=20)


def test_datasets_and_loaders_are_hashed_batch_by_batch(tmp_path):
    model, x = MLP(), rows(500)
    y = torch.zeros(500)
    path = tmp_path / "acts"
    first = capture(model, TensorDataset(x, y), ["fc2"], cache_dir=path, batch_size=64)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["data"]["hashed"] == "batches"
    assert manifest["data"]["fingerprint"].startswith("blake2b:")

    calls = model.calls
    again = capture(model, TensorDataset(x.clone(), y), ["fc2"], cache_dir=path, batch_size=64)
    assert model.calls == calls + 1  # data read once to hash it; the model ran the probe only
    np.testing.assert_array_equal(np.array(again["fc2"]), np.array(first["fc2"]))
    # a DataLoader and a one-shot generator yielding the same samples in order also match
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    assert capture(model, loader, ["fc2"], cache_dir=path).n_samples == 500
    gen = (x[i : i + 100] for i in range(0, 500, 100))
    assert capture(model, gen, ["fc2"], cache_dir=path).n_samples == 500

    changed = x.clone()
    changed[100] += 1e-3
    with pytest.raises(StaleCacheError, match=r"input data differ \(the data source yielded other"):
        capture(model, TensorDataset(changed, y), ["fc2"], cache_dir=path, batch_size=64)
    shuffled = DataLoader(
        TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(StaleCacheError, match="shuffling DataLoader"):
        capture(model, shuffled, ["fc2"], cache_dir=path)
    fewer = (x[i : i + 100] for i in range(0, 400, 100))
    with pytest.raises(StaleCacheError, match=r"the data yielded 400 samples, the cache holds 500"):
        capture(model, fewer, ["fc2"], cache_dir=path)


def test_object_array_gets_the_conversion_error_not_a_hashing_error(tmp_path):
    x = np.empty((3, 6), dtype=object)
    x[:] = 1.0
    with pytest.raises(TypeError, match=r"hold numbers, got a numpy array of dtype object"):
        capture(MLP(), x, ["fc2"], cache_dir=tmp_path / "acts")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- item 14


def test_model_attribute_read_in_forward_invalidates_the_cache(tmp_path):
    model, x = Scaled(), rows(30)
    path = tmp_path / "acts"
    capture(model, x, ["fc"], cache_dir=path)  # the recorded layer itself is unchanged ...
    before = model_fingerprint(model)
    model.scale = 2.0  # ... but the model's output doubles
    assert model_fingerprint(model) == before  # plain attributes are not in the static part
    with pytest.raises(StaleCacheError, match=r"output on the first inputs differs.*attribute"):
        capture(model, x, ["fc"], cache_dir=path)
    model.scale = 1.0
    assert capture(model, x, ["fc"], cache_dir=path).n_samples == 30


def test_non_persistent_buffer_changes_the_fingerprint(tmp_path):
    model, x = Scaled(), rows(30)
    path = tmp_path / "acts"
    capture(model, x, ["fc"], cache_dir=path)
    assert "shift" not in model.state_dict()
    before = model_fingerprint(model)
    model.shift += 0.5
    assert model_fingerprint(model) != before
    with pytest.raises(StaleCacheError, match=r"model weights differ \(or its buffers"):
        capture(model, x, ["fc"], cache_dir=path)
    with pytest.raises(StaleCacheError, match="buffers or configuration differ"):
        load_cache(path, model=model)


def test_configuration_and_class_change_the_fingerprint():
    a, b = MLP(), MLP()
    assert model_fingerprint(a) == model_fingerprint(b)
    b.act.negative_slope = 0.3  # shown by LeakyReLU.extra_repr(), not a weight
    assert model_fingerprint(a) != model_fingerprint(b)

    class OtherMLP(MLP):
        pass

    c = OtherMLP()
    assert c.state_dict().keys() == a.state_dict().keys()
    assert model_fingerprint(c) != model_fingerprint(a)
    # a counter attribute changes nothing
    a(rows(2))
    assert a.calls == 1 and model_fingerprint(a) == model_fingerprint(MLP())


def test_probe_tolerates_rounding_but_not_changes():
    model = Scaled()
    x = rows(1)
    ref = probe_summary(model, x)
    assert ref["n_inputs"] == 1 and ref["outputs"][0]["shape"] == [1, 4]
    assert probe_difference(ref, probe_summary(model, x)) is None
    with torch.no_grad():
        model.fc.weight.mul_(1 + 1e-6)  # last-bit differences, as another device gives
    assert probe_difference(ref, probe_summary(model, x)) is None
    model.scale = 1.01
    assert "output 0 changed" in probe_difference(ref, probe_summary(model, x))
    permuted = Scaled()
    with torch.no_grad():
        permuted.fc.weight.copy_(permuted.fc.weight.flip(0))
        permuted.fc.bias.copy_(permuted.fc.bias.flip(0))
    assert probe_difference(ref, probe_summary(permuted, x)) is not None  # same stats, reordered
    assert "malformed" in probe_difference(ref, {"n_inputs": 1, "outputs": [{}]})


# --------------------------------------------------------------------------- item 15


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from torch import nn
    from torch.utils.data import Dataset
    from nncompare.capture import capture

    torch.set_num_threads(1)
    ready = Path(sys.argv[2])

    class Slow(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            if i == 40:  # several batches are on disk by now
                ready.write_text("ready")
                time.sleep(600)
            return torch.ones(6) * i

    capture(nn.Sequential(nn.Linear(6, 3)), Slow(), ["0"], batch_size=8, cache_dir=sys.argv[1])
    """
)


def partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.mark.skipif(os.name != "posix", reason="stale-writer detection is POSIX only")
def test_killed_writer_leaves_a_partial_that_the_next_run_removes(tmp_path):
    folder = tmp_path / "caches"
    folder.mkdir()
    ready = tmp_path / "ready"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder / "slow"), str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"writer exited early: {proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("writer did not start within 300 s")
            time.sleep(0.2)
        (live,) = partials(folder)
        assert live.name.startswith(".slow.")
        record = json.loads((live / WRITER_FILE).read_text())
        assert record["pid"] == proc.pid and record["host"] == socket.gethostname()
        assert (live / "layer_000.npy").is_file()

        # a capture next to a live writer leaves its build directory alone
        model = MLP()
        capture(model, rows(10), ["fc2"], cache_dir=folder / "other")
        assert partials(folder) == [live]
    finally:
        proc.send_signal(signal.SIGKILL)  # the simulated crash: no cleanup code runs
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert partials(folder) == [live]  # left behind by the kill

    capture(model, rows(10), ["fc2"], cache_dir=folder / "other")  # the next run ...
    assert partials(folder) == []  # ... removes it
    assert sorted(p.name for p in folder.iterdir()) == ["other"]


@pytest.mark.skipif(os.name != "posix", reason="stale-writer detection is POSIX only")
def test_only_partials_of_dead_writers_are_removed(tmp_path):
    def make(name: str, **changes) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "layer_000.npy").write_bytes(b"\0" * 1000)
        (d / WRITER_FILE).write_text(json.dumps({**_writer_record(), **changes}))
        return d

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(done.stdout)
    dead = make(".a.x1.partial", pid=dead_pid, start_time=None)
    rebooted = make(".a.x2.partial", boot_id="another-boot")
    own = make(".a.x3.partial")  # this process: alive
    other_host = make(".a.x4.partial", pid=dead_pid, host="elsewhere.example")
    aside = make(".a.x5.old", pid=dead_pid)
    garbled = tmp_path / ".a.x6.partial"
    garbled.mkdir()
    (garbled / WRITER_FILE).write_text("{half a rec")
    unmarked = tmp_path / ".a.x7.partial"
    unmarked.mkdir()
    user_dir = make("results.partial", pid=dead_pid)  # not a hidden build directory
    expected = {dead, aside}
    if _cache._boot_id() is not None:
        expected.add(rebooted)
    if _process_start_time(os.getpid()) is not None:  # the pid of this process, reused
        reused = make(".a.x8.partial", start_time=_process_start_time(os.getpid()) - 1)
        expected.add(reused)

    removed = set(remove_stale_partials(tmp_path))
    assert removed == expected
    for kept in (own, other_host, garbled, unmarked, user_dir):
        assert kept.exists()
    assert remove_stale_partials(tmp_path / "missing") == []


def test_live_writer_in_this_process_is_kept_and_marker_not_published(tmp_path):
    writer = _CacheWriter(tmp_path / "a")
    try:
        assert (writer.tmp / WRITER_FILE).is_file()
        capture(MLP(), rows(5), ["fc2"], cache_dir=tmp_path / "b")
        assert writer.tmp.exists()
    finally:
        writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["layer_000.npy", "manifest.json"]


def test_overwrite_never_deletes_a_directory_that_is_not_a_cache(tmp_path):
    """capture(cache_dir=D, overwrite=True) replaced any existing D, e.g. a user's results
    folder: now only an nncompare cache (or an empty directory) can be replaced."""
    import torch

    from nncompare.capture import capture

    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x = torch.randn(10, 4)
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "paper.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match=r"is a directory that is not an nncompare"):
        capture(net, x, ["0"], cache_dir=precious, overwrite=True, progress=False)
    assert (precious / "paper.tex").read_text() == "do not delete"
    a_file = tmp_path / "file.npy"
    a_file.write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"is a file, not an activation cache"):
        capture(net, x, ["0"], cache_dir=a_file, overwrite=True, progress=False)
    cache = tmp_path / "cache"
    capture(net, x, ["0"], cache_dir=cache, progress=False)
    again = capture(net, 2 * x, ["0"], cache_dir=cache, overwrite=True, progress=False)
    np.testing.assert_allclose(np.asarray(again["0"]), net(2 * x).detach().numpy(), rtol=1e-6)
