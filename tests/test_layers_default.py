"""Default layer lists (blocks / leaves) and glob matches that alias one tensor (issue 7, item 3).

Reproducer: the README's ``layers_a=["layer*"]`` on the CIFAR ResNets gave a 75 × 123 grid,
because every Sequential stage and every residual block repeats the output of its last child.
The architectures are built without weights: only the module structure matters here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nncompare as nc
from nncompare.capture import default_layers, resolve_layers
from nncompare.workbench.models import MLP, SmallCNN, cifar_resnet


def _blocks(stages: int, per_stage: int) -> list[str]:
    return [f"layer{s}.{b}" for s in range(1, stages + 1) for b in range(per_stage)]


def _no_ancestors(names: list[str]) -> bool:
    """No name is a container (dot-path prefix) of another one."""
    return not any(b.startswith(a + ".") for a in names for b in names)


# --------------------------------------------------------------------------- default_layers


def test_resnet20_blocks_are_stem_nine_blocks_and_head():
    names = default_layers(cifar_resnet(20))
    assert names == ["relu", *_blocks(3, 3), "avgpool", "linear"]
    assert default_layers(cifar_resnet(20), granularity="blocks") == names


def test_resnet32_blocks_are_stem_fifteen_blocks_and_head():
    names = default_layers(cifar_resnet(32))
    assert names == ["relu", *_blocks(3, 5), "avgpool", "linear"]
    assert _no_ancestors(names)


def test_resnet20_leaves_are_every_leaf_but_identity_shortcuts():
    names = default_layers(cifar_resnet(20), granularity="leaves")
    # stem conv1/bn1/relu; per block conv1, bn1, relu1, conv2, bn2, relu2 (9 blocks); the two
    # option-A shortcuts of layer2.0 and layer3.0 (the other shortcuts are nn.Identity); head
    assert len(names) == 3 + 9 * 6 + 2 + 2
    assert "layer2.0.shortcut" in names and "layer1.0.shortcut" not in names
    assert _no_ancestors(names)
    assert "layer1" not in names and "layer1.0" not in names


def test_flat_models_have_no_blocks_and_get_their_leaves():
    cnn = SmallCNN()
    expected = ["conv1", "bn1", "relu1", "maxpool1", "conv2", "bn2", "relu2", "pool", "fc"]
    assert default_layers(cnn) == expected
    assert default_layers(cnn, "leaves") == expected
    mlp = MLP(64, (32, 16), 10)  # its leading Flatten is left out
    assert default_layers(mlp) == ["fc1", "relu1", "fc2", "relu2", "fc3"]


def test_transformer_encoder_layers_are_blocks():
    """A module wrapping a stage of repeated blocks is looked through (torch's own encoder)."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(5, 16)
            layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False)
            self.head = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(x)).mean(1))

    model = Tiny()
    names = default_layers(model)
    assert names == ["embed", "encoder.layers.0", "encoder.layers.1", "encoder.layers.2", "head"]
    df = nc.compare_models(model, model, torch.randn(40, 4, 5), measures=["cka"], batch_size=20)
    assert sorted(set(df["layer_a"])) == sorted(names)


def test_branches_of_a_block_are_not_split_up():
    """Parallel branches inside a custom block (inception style) stay one block."""

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())
            self.right = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.left(x), self.right(x)], dim=1)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model.add_module("mix", Branchy())
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    assert default_layers(model) == ["2", "mix", "pool"]


def test_bad_granularity_names_both_choices():
    with pytest.raises(ValueError, match=r"granularity to be 'blocks' or 'leaves', got 'block'"):
        default_layers(cifar_resnet(20), granularity="block")


def test_model_without_submodules_is_refused():
    with pytest.raises(ValueError, match=r"Linear has no submodules.*pass layers="):
        default_layers(nn.Linear(3, 2))


def test_analyses_default_layers_forwards_to_capture():
    from nncompare.analyses import default_layers as from_analyses

    assert nc.capture.default_layers is default_layers  # public as nc.capture.default_layers

    net = cifar_resnet(20)
    assert from_analyses(net) == ["relu", *_blocks(3, 3), "avgpool", "linear"]
    assert from_analyses(net, "leaves") == default_layers(net, "leaves")


# --------------------------------------------------------------------------- glob aliases


def test_glob_on_resnet_repeats_tensors_without_a_sample():
    """The reproducer: 75 names for ResNet-20, and a stage is its last block is its ReLU."""
    net = cifar_resnet(20).eval()
    names = resolve_layers(net, ["layer*"])
    assert len(names) == 75
    x = torch.randn(4, 3, 32, 32)
    acts = nc.capture(net, x, ["layer1", "layer1.2", "layer1.2.relu2"])
    np.testing.assert_array_equal(acts["layer1"], acts["layer1.2"])
    np.testing.assert_array_equal(acts["layer1.2"], acts["layer1.2.relu2"])


def test_glob_with_sample_keeps_one_name_per_tensor_in_depth_order():
    net = cifar_resnet(20).eval()
    x = torch.randn(4, 3, 32, 32)
    names = resolve_layers(net, ["layer*"], sample_input=x[:2])
    # per block: conv1, bn1, relu1, conv2, bn2 and the block itself (its relu2 merged into
    # it, the Identity shortcuts merged into the block before), the two option-A shortcuts,
    # and layer1.0.shortcut: an Identity passing on the stem output, which no other match holds
    assert len(names) == 9 * 6 + 2 + 1
    assert "layer1" not in names and "layer1.2.relu2" not in names
    # the block stands where its relu2 (which computed the tensor) was: after its insides
    assert names[names.index("layer1.0.bn2") :][:3] == [
        "layer1.0.bn2",
        "layer1.0.shortcut",
        "layer1.0",
    ]
    assert names.index("layer1.2") < names.index("layer2.0.conv1")
    acts = nc.capture(net, x, names)
    flat = {k: np.asarray(v).ravel() for k, v in acts.items()}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if flat[a].shape == flat[b].shape:
                assert not np.array_equal(flat[a], flat[b]), (a, b)


def test_glob_with_sample_keeps_exact_names():
    net = cifar_resnet(20).eval()
    names = resolve_layers(net, ["layer1", "layer1.*"], sample_input=torch.zeros(2, 3, 32, 32))
    assert names[0] == "layer1"
    assert "layer1.2" not in names and "layer1.2.relu2" not in names
    assert "layer1.1" in names


def test_in_place_activation_is_not_an_alias():
    """BatchNorm then ReLU(inplace=True): one tensor object, but different values."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True)).eval()
    x = torch.randn(6, 3, 8, 8)
    names = resolve_layers(net, ["*"], sample_input=x[:2])
    assert names == ["0", "1", "2"]
    acts = nc.capture(net, x, names)
    assert (np.asarray(acts["1"]) < 0).any() and (np.asarray(acts["2"]) >= 0).all()


# --------------------------------------------------------------------------- compare_models


def test_compare_models_default_is_blocks_on_resnets():
    torch.manual_seed(0)
    r20, r32 = cifar_resnet(20).eval(), cifar_resnet(32).eval()
    x = torch.randn(24, 3, 32, 32)
    df = nc.compare_models(r20, r32, x, measures=["cka"], batch_size=12)
    assert list(dict.fromkeys(df["layer_a"])) == ["relu", *_blocks(3, 3), "avgpool", "linear"]
    assert list(dict.fromkeys(df["layer_b"])) == ["relu", *_blocks(3, 5), "avgpool", "linear"]
    assert len(df) == 12 * 18


def test_compare_models_glob_has_no_duplicate_pairs():
    torch.manual_seed(0)
    r20, r32 = cifar_resnet(20).eval(), cifar_resnet(32).eval()
    x = torch.randn(16, 3, 32, 32)
    df = nc.compare_models(
        r20, r32, x, layers_a=["layer*.?"], layers_b=["layer*.?"], measures=["cka"]
    )
    assert df["layer_a"].nunique() == 9 and df["layer_b"].nunique() == 15
    df = nc.compare_models(
        r20, r32, x, layers_a=["layer*"], layers_b=["layer*"], measures=["cka"], batch_size=8
    )
    assert df["layer_a"].nunique() == 9 * 6 + 3 and df["layer_b"].nunique() == 15 * 6 + 3
    aliases = df.attrs["layer_aliases"]
    assert aliases["A"]["layer1"] == "layer1.2" and aliases["B"]["layer1"] == "layer1.4"
    assert aliases["A"]["layer3.2.relu2"] == "layer3.2"


def test_compare_models_default_leaves_out_modules_that_never_run():
    class WithAux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
            self.aux = nn.Sequential(nn.Linear(8, 2))  # training-only head, never called here
            self.out = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.body(x))

    torch.manual_seed(0)
    net = WithAux()
    assert "aux.0" in default_layers(net)
    df = nc.compare_models(net, net, torch.randn(30, 6), measures=["cka"])
    assert set(df["layer_a"]) == {"body.0", "body.1", "out"}
