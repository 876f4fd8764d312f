"""One atomic writer and one state-dict reader for the whole package (nncompare._io)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nncompare._io import (  # noqa: E402
    UnsafeCheckpointError,
    atomic_write,
    read_state_dict,
    state_dict_from,
)


def test_atomic_write_bytes_text_and_callable(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    atomic_write(p, "é")
    assert p.read_text(encoding="utf-8") == "é"
    atomic_write(p, lambda fh: fh.write(b"abc"))
    assert p.read_bytes() == b"abc"
    assert oct(p.stat().st_mode & 0o777) == "0o644"


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]


def _state():
    return torch.nn.Linear(3, 2).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "best_prec1": 91.7},
        lambda s: {"model_state_dict": s, "epoch": 3},
        lambda s: {f"module.{k}": v for k, v in s.items()},  # DataParallel
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
)
def test_read_state_dict_unwraps_and_strips_module_prefix(tmp_path, wrap):
    state = _state()
    p = tmp_path / "ckpt.pt"
    torch.save(wrap(state), p)
    got = read_state_dict(p)
    assert sorted(got) == ["bias", "weight"]
    for k in state:
        torch.testing.assert_close(got[k], state[k])


def test_pickled_objects_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "x": Evil()}, p)
    with pytest.raises(
        UnsafeCheckpointError,
        match=r"is not plain tensors \(it refers to io\.open\); loading it would run",
    ):
        read_state_dict(p)
    assert not marker.exists()


def test_whole_models_need_allow_pickle(tmp_path):
    net = torch.nn.Linear(3, 2)
    p = tmp_path / "model.pt"
    torch.save(net, p)
    with pytest.raises(UnsafeCheckpointError, match="allow pickles explicitly"):
        read_state_dict(p)
    got = read_state_dict(p, allow_pickle=True)
    torch.testing.assert_close(got["weight"], net.weight.detach())


def test_not_a_state_dict_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"entry 'epoch' is a int, expected string keys"):
        state_dict_from({"weight": torch.zeros(1), "epoch": 3})
    with pytest.raises(ValueError, match=r"holds a list, expected a state dict"):
        state_dict_from([1, 2])
    with pytest.raises(FileNotFoundError, match=r"--weights '.*nope.pt' does not exist"):
        read_state_dict(tmp_path / "nope.pt", what="--weights")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"cannot read checkpoint '.*junk.pt' as a torch"):
        read_state_dict(junk)


def test_compare_checkpoints_reads_wrapped_and_data_parallel_checkpoints(tmp_path):
    """compare_checkpoints used torch.load directly: a DataParallel ('module.') checkpoint
    failed to load. It now reads through the one state-dict reader."""
    import nncompare as nc

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    first = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    p0, p1 = tmp_path / "e0.pt", tmp_path / "e1.pt"
    torch.save({f"module.{k}": v for k, v in first.items()}, p0)
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, p1)
    df = nc.compare_checkpoints(net, [p0, p1], torch.randn(64, 4), layers=["0", "2"],
                                measures=["cka"])  # fmt: skip
    assert set(df["checkpoint"]) == {"e0", "e1"}
    assert df["value"].notna().all()
