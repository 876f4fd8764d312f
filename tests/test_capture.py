"""Tests for nncompare.capture: layer listing, hooks, data iteration, streaming, cache."""

from __future__ import annotations

import gc
import json
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import nncompare as nc
from nncompare.capture import (
    ActivationRecorder,
    CapturedActivations,
    InvalidCacheError,
    LayerInfo,
    LayerNotFoundError,
    StaleCacheError,
    capture,
    format_layer_table,
    iter_batches,
    list_layers,
    load_cache,
    model_fingerprint,
    resolve_layers,
    to_channels_last,
)

# --------------------------------------------------------------------------- models


def conv_net(seed: int = 0) -> nn.Sequential:
    """Conv followed by an in-place ReLU, plus BatchNorm and Dropout."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3, padding=1),
            relu=nn.ReLU(inplace=True),
            bn=nn.BatchNorm2d(4),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            drop=nn.Dropout(0.5),
            fc=nn.Linear(16, 5),
        )
    )


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv1(x)) + x


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Block(), Block())
        self.layer2 = nn.Sequential(Block())
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


class PairOut(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x + 1


class DictOut(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": x * 3, "aux": x - 1}


class MultiOutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.inp = nn.Linear(6, 4)
        self.pair = PairOut()
        self.dict = DictOut()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pair(self.inp(x))
        d = self.dict(a + b)
        return self.head(d["out"] + d["aux"])


class ReuseNet(nn.Module):
    """``block`` runs twice per forward pass; ``unused`` never runs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.block = nn.Linear(4, 4)
        self.act = nn.Tanh()
        self.head = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.head(self.block(self.act(self.block(x))))


class Failing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lin(x)
        raise RuntimeError("boom")


class RaisingDataset(Dataset):
    """Yields (x, y) pairs and raises when item ``fail_at`` is read."""

    def __init__(self, x: torch.Tensor, fail_at: int) -> None:
        self.x, self.fail_at = x, fail_at

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i == self.fail_at:
            raise RuntimeError("data source failed")
        return self.x[i], 0


class XOnlyDataset(Dataset):
    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.x[i]


def images(n: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))


def no_hooks(model: nn.Module) -> bool:
    return all(len(m._forward_hooks) == 0 for m in model.modules())


def reference(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Output of ``layer`` for ``x`` via a manual, independent forward pass."""
    seen = []
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was)
    return seen[0]


# --------------------------------------------------------------------------- listing


def test_list_layers_names_types_params():
    model = ResNetish()
    infos = list_layers(model)
    assert [i.name for i in infos] == [n for n, _ in model.named_modules() if n]
    by_name = {i.name: i for i in infos}
    assert "layer1.0.conv1" in by_name and "" not in by_name
    conv = by_name["layer1.0.conv1"]
    assert isinstance(conv, LayerInfo)
    assert conv.type == "Conv2d" and conv.is_leaf and conv.depth == 2
    assert conv.n_params == 4 * 4 * 9 + 4
    assert by_name["layer1"].n_params == 2 * conv.n_params and not by_name["layer1"].is_leaf
    assert conv.output_shapes == () and conv.output_type is None
    with pytest.raises(dataclass_frozen_error()):
        conv.name = "x"  # type: ignore[misc]
    leaves = list_layers(model, leaf_only=True)
    assert all(i.is_leaf for i in leaves)
    assert "layer1" not in {i.name for i in leaves}


def dataclass_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_list_layers_shapes_reuse_and_tuple():
    model = ResNetish()
    infos = {i.name: i for i in list_layers(model, torch.zeros(2, 3, 5, 5))}
    assert infos["layer1.0.conv1"].output_shapes == ((2, 4, 5, 5),)
    assert infos["head"].output_shape == (2, 3)

    reuse = {i.name: i for i in list_layers(ReuseNet(), torch.zeros(7, 4))}
    assert reuse["block"].output_shapes == ((7, 4), (7, 4))
    assert reuse["block"].n_calls == 2
    assert reuse["unused"].n_calls == 0

    multi = {i.name: i for i in list_layers(MultiOutNet(), (np.zeros((3, 6)),))}
    assert multi["pair"].output_shapes == ((3, 4),)
    assert multi["pair"].output_type.startswith("tuple[")
    assert multi["dict"].output_shapes == ()
    assert "'out'" in multi["dict"].output_type


def test_list_layers_restores_state():
    model = conv_net()
    model.train()
    model.bn.eval()  # deliberately mixed modes
    list_layers(model, images(2))
    assert model.training and not model.bn.training and model.drop.training
    assert no_hooks(model)
    assert torch.is_grad_enabled()
    with pytest.raises(RuntimeError):
        list_layers(model, torch.zeros(2, 5, 6, 6))  # forward fails
    assert no_hooks(model) and model.training and not model.bn.training


def test_format_layer_table_and_str():
    infos = list_layers(conv_net(), images(2))
    table = format_layer_table(infos)
    lines = table.splitlines()
    assert lines[0].split() == ["name", "type", "params", "output"]
    assert len(lines) == 2 + len(infos)
    assert "conv" in lines[2] and "Conv2d" in lines[2] and "(2, 4, 6, 6)" in lines[2]
    assert "112" in lines[2]
    text = str(infos[0])
    assert "conv" in text and "Conv2d" in text and "112" in text
    # without shapes there is no output column
    assert "output" not in format_layer_table(list_layers(conv_net())).splitlines()[0]
    indented = format_layer_table(list_layers(ResNetish()), indent=True)
    assert "    layer1.0.conv1" in indented


# --------------------------------------------------------------------------- resolving


def test_resolve_layers_exact_and_globs():
    model = ResNetish()
    assert resolve_layers(model, "head") == ["head"]
    assert resolve_layers(model, ["layer*.?.relu"]) == [
        "layer1.0.relu",
        "layer1.1.relu",
        "layer2.0.relu",
    ]
    assert resolve_layers(model, ["*conv*"]) == [
        "layer1.0.conv1",
        "layer1.1.conv1",
        "layer2.0.conv1",
    ]
    # order of patterns kept, duplicates dropped
    assert resolve_layers(model, ["head", "layer2.0.conv1", "*conv1", "head"]) == [
        "head",
        "layer2.0.conv1",
        "layer1.0.conv1",
        "layer1.1.conv1",
    ]


def test_unknown_layer_lists_close_matches():
    model = ResNetish()
    with pytest.raises(LayerNotFoundError) as info:
        resolve_layers(model, ["layer1.0.conv2"])
    msg = str(info.value)
    assert isinstance(info.value, KeyError)
    assert "'layer1.0.conv1'" in msg
    assert "nncompare layers MODEL" in msg and "nc.list_layers(model)" in msg
    assert not msg.startswith('"')  # not a quoted KeyError repr

    with pytest.raises(LayerNotFoundError, match="matched no layer"):
        resolve_layers(model, ["layer9.*"])
    with pytest.raises(ValueError, match="at least one"):
        resolve_layers(model, [])
    with pytest.raises(TypeError, match="strings"):
        resolve_layers(model, [3])  # type: ignore[list-item]
    with pytest.raises(LayerNotFoundError):
        capture(model, images(2), ["stemm"])


# --------------------------------------------------------------------------- recorder


def test_hooks_removed_after_success_and_exception():
    model = conv_net()
    with ActivationRecorder(model, ["conv", "fc"]) as rec:
        assert rec.active and len(model.conv._forward_hooks) == 1
        acts = rec.run(images(4))
    assert set(acts) == {"conv", "fc"}
    assert no_hooks(model) and not rec.active

    with pytest.raises(RuntimeError), ActivationRecorder(model, ["conv", "fc"]) as rec:
        model(torch.zeros(2, 5, 6, 6))  # wrong channel count: forward raises
    assert no_hooks(model)

    failing = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        capture(failing, torch.zeros(3, 4), ["lin"])
    assert no_hooks(failing)
    assert torch.is_grad_enabled()


def test_exception_restores_modes_and_grad():
    model = conv_net()
    model.train()
    with pytest.raises(RuntimeError):
        capture(model, torch.zeros(2, 5, 6, 6), ["conv"])
    assert model.training and model.bn.training
    assert no_hooks(model)
    assert torch.is_grad_enabled()


def test_clone_protects_against_inplace_relu():
    model = conv_net()
    x = images(8)
    with torch.no_grad():
        manual = model.conv(x)  # pre-activation values, with negatives
    assert (manual < 0).any()
    acts = capture(model, x, ["conv"], batch_size=3)
    np.testing.assert_allclose(acts["conv"], manual.numpy(), rtol=1e-6, atol=1e-6)

    # without cloning the record is corrupted by the in-place ReLU that follows
    with ActivationRecorder(model, ["conv"], clone=False) as rec:
        raw = rec.run(x)["conv"]
    assert (raw >= 0).all()


def test_tuple_and_dict_outputs():
    model = MultiOutNet()
    x = torch.randn(5, 6)
    with torch.no_grad():
        h = model.inp(x)
    acts = capture(model, x, ["pair"])
    np.testing.assert_allclose(acts["pair"], (h * 2).numpy(), rtol=1e-6)
    acts = capture(model, x, ["pair"], select=1)
    np.testing.assert_allclose(acts["pair"], (h + 1).numpy(), rtol=1e-6)
    acts = capture(model, x, ["pair"], select=lambda out: out[0] + out[1])
    np.testing.assert_allclose(acts["pair"], (3 * h + 1).numpy(), rtol=1e-5)

    with pytest.raises(TypeError, match=r"dict with keys \['out', 'aux'\].*select="):
        capture(model, x, ["dict"])
    assert no_hooks(model)
    acts = capture(model, x, ["dict", "pair", "head"], select={"dict": "aux"})
    np.testing.assert_allclose(acts["dict"], (3 * h + 1 - 1).numpy(), rtol=1e-5, atol=1e-6)
    assert acts.names == ["dict", "pair", "head"]
    # one int selector for a mix of tuple and tensor outputs
    acts = capture(model, x, ["pair", "head"], select=0)
    assert acts.shapes == {"pair": (5, 4), "head": (5, 2)}
    with pytest.raises(KeyError, match="not one of them"):
        capture(model, x, ["dict"], select="nope")
    with pytest.raises(IndexError, match="out of range"):
        capture(model, x, ["pair"], select=5)
    with pytest.raises(ValueError, match="unknown key"):
        ActivationRecorder(model, ["pair"], select={"head": 0})


def test_reused_module_records_every_call():
    model = ReuseNet()
    x = torch.randn(6, 4)
    with torch.no_grad():
        first = model.block(x)
        second = model.block(model.act(first))
    acts = capture(model, x, ["block", "head"])
    assert acts.names == ["block", "block#1", "head"]
    np.testing.assert_allclose(acts["block"], first.numpy(), rtol=1e-6)
    np.testing.assert_allclose(acts["block#1"], second.numpy(), rtol=1e-6)
    acts = capture(model, x, ["block"], reuse="first")
    assert acts.names == ["block"]
    np.testing.assert_allclose(acts["block"], first.numpy(), rtol=1e-6)
    acts = capture(model, x, ["block"], reuse="last")
    np.testing.assert_allclose(acts["block"], second.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="reuse"):
        capture(model, x, ["block"], reuse="every")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="did not run"):
        capture(model, x, ["unused"])


def test_train_eval_mode_restored():
    model = conv_net()
    model.train()
    modes = []
    model.bn.register_forward_pre_hook(lambda m, i: modes.append(m.training))
    x = images(10)
    a = capture(model, x, ["fc"])
    b = capture(model, x, ["fc"])
    np.testing.assert_array_equal(a["fc"], b["fc"])  # eval: dropout off
    assert modes == [False, False]
    assert model.training and all(m.training for m in model.modules())

    model.eval()
    model.drop.train()  # mixed modes survive
    c = capture(model, x, ["fc"], train_mode=True)
    assert modes[-1] is True
    assert not model.training and model.drop.training and not model.bn.training
    assert not np.allclose(c["fc"], a["fc"])  # dropout and batch statistics were on

    capture(model, x, ["fc"], train_mode=None)
    assert modes[-1] is False  # left as it was (bn in eval)


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda x, y: x, id="tensor"),
        pytest.param(lambda x, y: x.numpy().astype(np.float64), id="numpy-float64"),
        pytest.param(lambda x, y: (x, y), id="tuple-xy"),
        pytest.param(lambda x, y: [x.numpy(), y.numpy()], id="list-xy-numpy"),
        pytest.param(lambda x, y: (x,), id="tuple-x"),
        pytest.param(lambda x, y: TensorDataset(x, y), id="dataset-xy"),
        pytest.param(lambda x, y: XOnlyDataset(x.numpy()), id="dataset-x"),
        pytest.param(lambda x, y: DataLoader(TensorDataset(x, y), batch_size=7), id="loader-xy"),
        pytest.param(lambda x, y: DataLoader(x, batch_size=4), id="loader-x"),
        pytest.param(lambda x, y: (x[i : i + 6] for i in range(0, len(x), 6)), id="generator"),
    ],
)
def test_all_data_types_match_full_forward(make):
    model = conv_net()
    x = images(17)
    y = torch.arange(17)
    acts = capture(model, make(x, y), ["conv", "fc"], batch_size=5)
    assert acts.n_samples == 17
    np.testing.assert_allclose(acts["conv"], reference(model, x, "conv").numpy(), atol=1e-5)
    np.testing.assert_allclose(acts["fc"], reference(model, x, "fc").numpy(), atol=1e-5)
    assert acts["fc"].dtype == np.float32


def test_iter_batches_details():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10)
    batches = list(iter_batches((x, y), batch_size=4, with_targets=True, dtype=torch.float32))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[0][0].dtype == torch.float32
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), torch.arange(10))
    # integer inputs (token ids) are never cast
    ids = torch.arange(12).reshape(6, 2)
    assert next(iter(iter_batches(ids, 4, dtype=torch.float32))).dtype == torch.int64
    # read-only arrays are accepted without warnings
    ro = np.ones((3, 2), dtype=np.float32)
    ro.setflags(write=False)
    assert next(iter(iter_batches(ro))).shape == (3, 2)
    assert next(iter(iter_batches(x, with_targets=True)))[1] is None

    for bad in ["abc", {"x": x}, 3, None]:
        with pytest.raises(TypeError, match="Expected data to be"):
            iter_batches(bad)
    with pytest.raises(ValueError, match="same number of samples"):
        iter_batches((x, y[:3]))
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        iter_batches((x, y, y))
    with pytest.raises(ValueError, match="batch_size"):
        iter_batches(x, batch_size=0)
    with pytest.raises(TypeError, match="dict"):
        list(iter_batches(DataLoader([{"a": torch.zeros(2)}] * 3, batch_size=2)))
    with pytest.raises(ValueError, match="at least one sample"):
        capture(conv_net(), images(0), ["fc"])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 12),
    max_samples=st.one_of(st.none(), st.integers(1, 40)),
)
def test_iter_batches_covers_data_once(n, batch_size, max_samples):
    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
    batches = list(iter_batches(x, batch_size, max_samples=max_samples))
    expected = x if max_samples is None else x[:max_samples]
    torch.testing.assert_close(torch.cat(batches), expected)
    assert all(0 < len(b) <= batch_size for b in batches)


def test_max_samples():
    model = conv_net()
    x = images(23)
    full = capture(model, x, ["fc"], batch_size=5)
    part = capture(model, x, ["fc"], batch_size=5, max_samples=12)
    assert part.n_samples == 12
    np.testing.assert_array_equal(part["fc"], full["fc"][:12])
    loader = DataLoader(TensorDataset(x, torch.zeros(23)), batch_size=5)
    part = capture(model, loader, ["fc"], max_samples=7)
    np.testing.assert_array_equal(part["fc"], full["fc"][:7])


# --------------------------------------------------------------------------- streaming


def test_consumer_gets_every_sample_once_in_order():
    model = conv_net()
    x = images(23)
    got: dict[str, list[torch.Tensor]] = {"conv": [], "fc": []}
    indices = []
    refs = []

    def consumer(i, acts):
        indices.append(i)
        assert list(acts) == ["conv", "fc"]
        for name, t in acts.items():
            assert isinstance(t, torch.Tensor) and not t.requires_grad
            got[name].append(t.clone())
            refs.append(weakref.ref(t))

    out = capture(model, x, ["conv", "fc"], batch_size=5, consumer=consumer)
    assert out is None
    assert indices == [0, 1, 2, 3, 4]
    for name in got:
        torch.testing.assert_close(torch.cat(got[name]), reference(model, x, name))
    gc.collect()
    assert all(r() is None for r in refs)  # capture kept nothing


def test_reduce_options():
    model = conv_net()
    x = images(9)
    conv = reference(model, x, "conv")
    acts = capture(model, x, ["conv"], reduce="avgpool")
    np.testing.assert_allclose(acts["conv"], conv.mean(dim=(2, 3)).numpy(), atol=1e-6)
    acts = capture(model, x, ["conv"], reduce="flatten")
    np.testing.assert_allclose(acts["conv"], conv.reshape(9, -1).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        capture(model, x, ["conv"], reduce="sum")  # type: ignore[arg-type]


def test_dtype_and_progress(capsys):
    model = conv_net().double()
    x = images(6)
    assert capture(model, x, ["fc"])["fc"].dtype == np.float32
    assert capture(model, x, ["fc"], dtype=None)["fc"].dtype == np.float64
    capture(model, x, ["fc"], progress=True, batch_size=2)
    assert "6/6" in capsys.readouterr().err


def test_detach_false_lets_gradients_flow():
    model = conv_net()
    x = images(4)

    def consumer(i, acts):
        assert acts["fc"].requires_grad
        acts["fc"].sum().backward()

    capture(model, x, ["fc"], detach=False, consumer=consumer)
    assert model.conv.weight.grad is not None and model.conv.weight.grad.abs().sum() > 0

    model.zero_grad()
    with ActivationRecorder(model, ["conv"], detach=False) as rec:
        acts = rec.run(x)
    acts["conv"].pow(2).sum().backward()
    assert model.conv.weight.grad is not None

    with ActivationRecorder(model, ["conv"]) as rec:
        assert not rec.run(x)["conv"].requires_grad
    assert torch.is_grad_enabled()


# --------------------------------------------------------------------------- cache


def test_cache_round_trip(tmp_path):
    model = conv_net()
    x = images(13)
    mem = capture(model, x, ["conv", "fc"], batch_size=4)
    path = tmp_path / "acts"
    disk = capture(model, x, ["conv", "fc"], batch_size=4, cache_dir=path)
    assert isinstance(disk, CapturedActivations) and disk.path == path
    assert disk.names == mem.names and disk.shapes == mem.shapes
    for name in mem:
        # memory-mapped: conv layers are a LayoutArray view of the memmap (channels-first tag)
        arr = disk[name]
        assert isinstance(arr, np.memmap) or isinstance(arr.base, np.memmap)
        assert not arr.flags.writeable
        np.testing.assert_array_equal(arr, mem[name])
    assert disk["conv"].layout == "NCHW" and not hasattr(disk["fc"], "layout")
    loaded = load_cache(path, model=model)
    np.testing.assert_array_equal(loaded["conv"], mem["conv"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["n_samples"] == 13
    assert [entry["name"] for entry in manifest["layers"]] == ["conv", "fc"]
    assert manifest["layers"][0]["shape"] == [13, 4, 6, 6]
    assert manifest["model"]["fingerprint"] == model_fingerprint(model)
    assert manifest["nncompare_version"] == nc.__version__
    # every layer file is a plain .npy readable without nncompare or pickle
    arr = np.load(path / manifest["layers"][1]["file"], allow_pickle=False)
    np.testing.assert_array_equal(arr, mem["fc"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts"]


def test_cache_reuse_stale_and_overwrite(tmp_path):
    model = ReuseNet()
    x = torch.randn(9, 4)
    path = tmp_path / "c"
    first = capture(model, x, ["block"], cache_dir=path, batch_size=4)
    calls = model.calls
    streamed = []
    again = capture(
        model, x, ["block"], cache_dir=path, batch_size=4, consumer=lambda i, a: streamed.append(a)
    )
    assert model.calls == calls + 1  # served from the cache; the model ran only the probe
    np.testing.assert_array_equal(again["block#1"], first["block#1"])
    assert len(streamed) == 3
    torch.testing.assert_close(
        torch.cat([a["block"] for a in streamed]), torch.from_numpy(np.array(first["block"]))
    )

    other = ReuseNet()
    with torch.no_grad():
        other.head.bias += 1
    assert model_fingerprint(other) != model_fingerprint(model)
    with pytest.raises(StaleCacheError, match=r"model weights differ.*overwrite=True"):
        capture(other, x, ["block"], cache_dir=path)
    with pytest.raises(StaleCacheError):
        load_cache(path, model=other)
    with pytest.raises(StaleCacheError, match="layers differs"):
        capture(model, x, ["head"], cache_dir=path)
    with pytest.raises(StaleCacheError, match="input data differ"):
        capture(model, x + 1, ["block"], cache_dir=path)
    fresh = capture(other, x, ["head"], cache_dir=path, overwrite=True)
    assert fresh.names == ["head"]
    assert load_cache(path, model=other).names == ["head"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_crash_mid_capture_leaves_no_cache(tmp_path):
    model = conv_net()
    data = RaisingDataset(images(20), fail_at=13)
    path = tmp_path / "acts"
    with pytest.raises(RuntimeError, match="data source failed"):
        capture(model, data, ["conv", "fc"], batch_size=4, cache_dir=path)
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        load_cache(path)
    assert list(tmp_path.iterdir()) == []  # temporary directory cleaned up
    assert no_hooks(model) and torch.is_grad_enabled()


def test_half_written_or_damaged_cache_does_not_load(tmp_path):
    model = conv_net()
    path = tmp_path / "acts"
    capture(model, images(8), ["conv", "fc"], cache_dir=path)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for p in path.iterdir():
        (truncated / p.name).write_bytes(p.read_bytes())
    big = truncated / "layer_000.npy"
    big.write_bytes(big.read_bytes()[:-100])
    with pytest.raises(InvalidCacheError, match="damaged or truncated"):
        load_cache(truncated)

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "layer_000.npy").write_bytes((path / "layer_000.npy").read_bytes())
    with pytest.raises(InvalidCacheError, match="not a complete"):
        load_cache(partial)
    # an existing non-cache directory is never clobbered
    with pytest.raises(InvalidCacheError):
        capture(model, images(8), ["conv"], cache_dir=partial)
    assert (partial / "layer_000.npy").exists()

    (path / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidCacheError, match="damaged"):
        load_cache(path)


# --------------------------------------------------------------------------- misc


def test_captured_activations_mapping():
    acts = capture(conv_net(), images(4), ["conv", "fc"])
    assert len(acts) == 2 and list(acts) == ["conv", "fc"] and "fc" in acts
    assert acts.nbytes == acts["conv"].nbytes + acts["fc"].nbytes
    assert "n_samples=4" in repr(acts)
    with pytest.raises(LayerNotFoundError, match="'fc'"):
        acts["fcc"]
    with pytest.raises(ValueError, match="same number of samples"):
        CapturedActivations({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})


def test_to_channels_last():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    out = to_channels_last(a)
    assert out.shape == (2, 4, 5, 3)
    assert out[1, 2, 3, 0] == a[1, 0, 2, 3]
    t = torch.from_numpy(a)
    torch.testing.assert_close(to_channels_last(t), torch.from_numpy(np.ascontiguousarray(out)))
    assert to_channels_last(np.zeros((2, 3, 7))).shape == (2, 7, 3)
    assert to_channels_last(torch.zeros(2, 3, 7)).shape == (2, 7, 3)
    assert to_channels_last(np.zeros((2, 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="at least 2"):
        to_channels_last(np.zeros(3))
    with pytest.raises(TypeError):
        to_channels_last([1, 2])  # type: ignore[type-var]


def test_top_level_names():
    model = conv_net()
    x = images(3)
    assert nc.list_layers(model)[0].name == "conv"
    # nc.capture works whether it resolves to the function or to the (callable) module
    acts = nc.capture(model, x, ["fc"])
    assert acts["fc"].shape == (3, 5)
    import nncompare.capture as capture_module

    np.testing.assert_array_equal(capture_module(model, x, ["fc"])["fc"], acts["fc"])


def test_recorder_cannot_be_entered_twice():
    model = conv_net()
    rec = ActivationRecorder(model, ["conv"])
    with rec, pytest.raises(RuntimeError, match="already active"):
        rec.__enter__()
    assert no_hooks(model)
    with pytest.raises(RuntimeError, match="inside"):
        rec.run(images(2))


def test_cache_dir_as_string_empty_dir_and_consumer(tmp_path: Path):
    model = conv_net()
    x = images(5)
    (tmp_path / "s").mkdir()  # an empty directory is fine to write into
    seen = []
    out = capture(
        model,
        x,
        ["fc"],
        cache_dir=str(tmp_path / "s"),
        batch_size=2,
        consumer=lambda i, a: seen.append(a["fc"]),
    )
    assert out.n_samples == 5 and (tmp_path / "s" / "manifest.json").is_file()
    torch.testing.assert_close(torch.cat(seen), torch.from_numpy(np.array(out["fc"])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.bool_])
def test_streamed_npy_files_are_standard(tmp_path, dtype):
    from nncompare.capture._cache import _NpyAppender

    rng = np.random.default_rng(0)
    parts = [(rng.standard_normal((k, 3, 2)) * 10).astype(dtype) for k in (4, 1, 7)]
    writer = _NpyAppender(tmp_path / "a.npy", np.dtype(dtype), (3, 2))
    for part in parts:
        writer.append(part)
    writer.finish()
    loaded = np.load(tmp_path / "a.npy", allow_pickle=False)
    np.testing.assert_array_equal(loaded, np.concatenate(parts))
    assert loaded.dtype == dtype
