"""Tests for nncompare.models: layer names, shapes, option-A shortcuts, checkpoint loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nncompare.workbench.models import (
    CIFAR_MEAN,
    CIFAR_STD,
    MLP,
    CifarResNet,
    GlobalAvgPool,
    OptionAShortcut,
    SmallCNN,
    SmallCNN1d,
    cifar_preprocess,
    cifar_resnet,
    read_state_dict,
    vgg11_simplified,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shared_dir() -> Path:
    """The read-only ``shared`` folder next to the checkout (override: NNCOMPARE_SHARED)."""
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def shared_file(*parts: str) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    return path


def cifar10_shared(name: str = "cifar10_test_exact1017.npz") -> tuple[np.ndarray, np.ndarray]:
    """Test utility: the CIFAR-10 arrays from ``shared/data/cifar10`` (skip if absent)."""
    with np.load(shared_file("data", "cifar10", name)) as f:
        return f["x"], f["y"]


def akamaster_checkpoint(depth: int) -> Path:
    folder = shared_dir() / "data" / "akamaster_resnet_cifar10"
    matches = sorted(folder.glob(f"resnet{depth}-*.th")) if folder.is_dir() else []
    if not matches:
        pytest.skip(f"pretrained ResNet-{depth} not available in {folder}")
    return matches[0]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> float:
    with torch.inference_mode():
        preds = torch.cat(
            [model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
        )
    return float((preds == y).double().mean())


# ----------------------------------------------------------------------------- MLP


def test_mlp_names_and_shapes():
    net = MLP(64, hidden=(32, 16), out_features=10)
    names = [n for n, _ in net.named_children()]
    assert names == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_mlp_activation_names_and_linear_model():
    net = MLP(10, hidden=(4,), out_features=3, activation="tanh")
    assert isinstance(net.tanh1, nn.Tanh)
    linear = MLP(10, hidden=(), out_features=3)
    assert [n for n, _ in linear.named_children()] == ["flatten", "fc1"]


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP(10, activation="swishy")
    with pytest.raises(ValueError, match=r"hidden\[1\] must be a positive integer"):
        MLP(10, hidden=(4, 0))


# ----------------------------------------------------------------------------- small CNNs


def test_small_cnn_names_and_shapes():
    net = SmallCNN()
    names = [n for n, _ in net.named_children()]
    assert names == ["conv1", "bn1", "relu1", "maxpool1", "conv2", "bn2", "relu2", "pool", "fc"]
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    captured = {}
    net.pool.register_forward_hook(lambda m, i, o: captured.setdefault("pool", o))
    net(torch.zeros(3, 1, 8, 8))
    assert captured["pool"].shape == (3, 32)


def test_small_cnn_image_size_decides_pooling():
    net = SmallCNN(in_channels=3, widths=(8, 16, 32), image_size=28, batch_norm=False)
    names = [n for n, _ in net.named_children()]
    assert names.count("maxpool1") == 1 and "maxpool2" in names and "bn1" not in names
    assert net.conv1.bias is not None
    assert net(torch.zeros(2, 3, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SmallCNN(kernel_size=4)


def test_small_cnn1d_shapes():
    net = SmallCNN1d()
    assert net(torch.zeros(4, 1, 40)).shape == (4, 10)
    assert "maxpool2" in dict(net.named_children())


def test_global_avg_pool_rejects_flat_input():
    with pytest.raises(ValueError, match="at least one spatial axis"):
        GlobalAvgPool()(torch.zeros(2, 3))


# ----------------------------------------------------------------------------- VGG


def test_vgg11_simplified_follows_guth_menard_b1():
    net = vgg11_simplified(in_channels=3, num_classes=10, width=8)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 32, 64, 64, 64, 64]
    # no biases anywhere
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    # BatchNorm without learned parameters, placed after the ReLU
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 8 and all(not bn.affine for bn in bns)
    names = [n for n, _ in net.named_children()]
    for i in range(1, 9):
        assert names.index(f"relu{i}") + 1 == names.index(f"bn{i}")
        assert names.index(f"conv{i}") + 1 == names.index(f"relu{i}")
    # single linear classifier
    assert [n for n, m in net.named_modules() if isinstance(m, nn.Linear)] == ["fc"]
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


# ----------------------------------------------------------------------------- ResNet


def test_option_a_shortcut_pads_both_sides():
    x = torch.arange(2 * 16 * 6 * 6, dtype=torch.float32).reshape(2, 16, 6, 6) + 1.0
    out = OptionAShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 3, 3)
    assert torch.all(out[:, :8] == 0) and torch.all(out[:, 24:] == 0)
    # the original channels sit in the middle, subsampled from index 0 on
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.equal(
        OptionAShortcut(32, 64)(torch.ones(1, 32, 8, 8))[0, 16:48], torch.ones(32, 4, 4)
    )
    with pytest.raises(ValueError, match="must be even"):
        OptionAShortcut(16, 33)


@pytest.mark.parametrize(
    ("depth", "params"), [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018)]
)
def test_resnet_parameter_counts(depth, params):
    net = cifar_resnet(depth)
    assert isinstance(net, CifarResNet)
    assert net.depth == depth and len(net.layer1) == (depth - 2) // 6
    assert sum(p.numel() for p in net.parameters()) == params


def test_resnet_hookable_names_and_shapes():
    net = cifar_resnet(20).eval()
    names = dict(net.named_modules())
    for name in [
        "conv1",
        "bn1",
        "relu",
        "layer1.0.relu2",
        "layer2.0.shortcut",
        "avgpool",
        "linear",
    ]:
        assert name in names
    assert isinstance(net.layer2[0].shortcut, OptionAShortcut)
    assert isinstance(net.layer2[1].shortcut, nn.Identity)
    seen = {}
    for name in ["relu", "layer1", "layer2", "layer3", "layer3.2.relu2", "avgpool", "linear"]:
        names[name].register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, o.shape)
        )
    net(torch.zeros(2, 3, 32, 32))
    assert seen["relu"] == (2, 16, 32, 32)
    assert seen["layer1"] == (2, 16, 32, 32)
    assert seen["layer2"] == (2, 32, 16, 16)
    assert seen["layer3"] == seen["layer3.2.relu2"] == (2, 64, 8, 8)
    assert seen["avgpool"] == (2, 64)
    assert seen["linear"] == (2, 10)


@pytest.mark.parametrize("depth", [21, 2, 0])
def test_resnet_wrong_depth_is_explained(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2") as info:
        cifar_resnet(depth)
    message = str(info.value)
    assert f"depth={depth}" in message and "Fix:" in message
    if depth == 21:
        assert "20 and 26" in message
    with pytest.raises(TypeError, match="depth must be an int"):
        cifar_resnet(20.0)  # type: ignore[arg-type]


def test_resnet_loads_plain_and_akamaster_layouts(tmp_path):
    torch.manual_seed(0)
    source = cifar_resnet(20)
    state = source.state_dict()
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    wrapped = tmp_path / "wrapped.th"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 1.0}, wrapped
    )
    x = torch.randn(2, 3, 32, 32)
    expected = source.eval()(x)
    for path in (plain, str(wrapped)):
        net = cifar_resnet(20, weights=path)
        assert not net.training
        for key, value in net.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert torch.allclose(net(x), expected)
    assert set(read_state_dict(wrapped)) == set(state)
    # an in-memory state dict works too
    assert not cifar_resnet(20, weights=state).training


def test_resnet_wrong_checkpoint_depth_is_explained(tmp_path):
    path = tmp_path / "r32.pt"
    torch.save(cifar_resnet(32).state_dict(), path)
    with pytest.raises(ValueError, match=r"ResNet-32: call cifar_resnet\(32"):
        cifar_resnet(20, weights=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar_resnet(20, weights=tmp_path / "missing.th")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a state dict"):
        cifar_resnet(20, weights=tmp_path / "list.pt")


def test_cifar_preprocess():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    out = cifar_preprocess(images)
    assert out.dtype == torch.float32 and out.shape == (4, 3, 32, 32)
    c, i, j = 1, 5, 7
    expected = (images[2, i, j, c] / 255.0 - CIFAR_MEAN[c]) / CIFAR_STD[c]
    assert out[2, c, i, j].item() == pytest.approx(expected, abs=1e-6)
    assert cifar_preprocess(torch.from_numpy(images[0])).shape == (1, 3, 32, 32)
    with pytest.raises(TypeError, match="uint8"):
        cifar_preprocess(images.astype(np.float32))
    with pytest.raises(ValueError, match="channels-first"):
        cifar_preprocess(images.transpose(0, 3, 1, 2))


# published: (accuracy on exact test images 0..1016 from shared/data README, source README)
PUBLISHED = {20: (91.64, 91.73), 32: (92.82, 92.63), 44: (93.41, 93.10), 56: (92.72, 93.39)}


@pytest.fixture(scope="module")
def cifar_test_exact() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = cifar10_shared("cifar10_test_exact1017.npz")
    return cifar_preprocess(x), torch.from_numpy(y)


@pytest.mark.shared
@pytest.mark.parametrize("depth", sorted(PUBLISHED))
def test_pretrained_resnet_accuracy(depth, cifar_test_exact):
    x, y = cifar_test_exact
    assert x.shape == (1017, 3, 32, 32)
    net = cifar_resnet(depth, weights=akamaster_checkpoint(depth))
    acc = 100 * accuracy(net, x, y)
    on_subset, reported = PUBLISHED[depth]
    assert abs(acc - on_subset) < 0.5, f"ResNet-{depth}: {acc:.2f}% vs {on_subset}%"
    assert abs(acc - reported) < 2.5, f"ResNet-{depth}: {acc:.2f}% vs published {reported}%"
