"""Class sensitivity (issue #13 item 3; Raghu et al. 2017 §4.3): the DFT-CCA similarity of
each layer with a class's logit equals nc.cca(..., conv="dft") called by hand on the
captured activations, vector and conv layers alike; options, the figure, the report,
nncompare class-sensitivity and its one-line errors; the pretrained ResNet-20 (skipped
without ../shared)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare.analyses import class_sensitivity


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup():
    from nncompare.workbench.data import load_digits
    from nncompare.workbench.models import SmallCNN
    from nncompare.workbench.training import train

    tr, te = load_digits("train"), load_digits("test")
    torch.manual_seed(0)
    net = SmallCNN(in_channels=1, num_classes=10)
    train(net, tr, epochs=3, lr=0.05, seed=0, batch_size=64, optimizer="sgd", momentum=0.9)
    net.eval()
    return net, torch.as_tensor(np.asarray(te.x))


def _captured(net, x, names):
    acts = {}
    mods = dict(net.named_modules())
    hooks = [
        mods[n].register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o.detach()))
        for n in names
    ]
    with torch.no_grad():
        logits = net(x)
    for h in hooks:
        h.remove()
    return acts, logits.double().numpy()


def _as_conv(a):
    """(N, C, H, W) stays; (N, C) -> (N, C, 1, 1): a vector is a 1 x 1 map."""
    a = a.double().numpy() if hasattr(a, "numpy") else a
    return a if a.ndim == 4 else a.reshape(a.shape[0], a.shape[1], 1, 1)


@pytest.mark.parametrize("measure", ["cca", "svcca"])
def test_equals_dft_cca_by_hand(setup, measure):
    net, x = setup
    layers = ["relu1", "maxpool1", "relu2", "pool"]
    classes = {"zero": 0, "three": 3, "eight": 8}
    df = class_sensitivity(net, x, classes, layers=layers, measure=measure)
    assert list(df.columns[:5]) == ["layer", "class", "class_index", "measure", "value"]
    assert len(df) == len(layers) * len(classes) and set(df["policy"]) == {"dft"}
    acts, logits = _captured(net, x, layers)
    fn = nc.cca if measure == "cca" else nc.svcca
    for layer in layers:
        for name, j in classes.items():
            target = logits[:, j].reshape(-1, 1, 1, 1)
            by_hand = fn(_as_conv(acts[layer]), target, conv="dft", layout="NCHW")
            got = df[(df.layer == layer) & (df["class"] == name)]["value"].item()
            assert got == pytest.approx(float(by_hand.value), rel=1e-8, abs=1e-12), (layer, name)


def test_logits_layer_and_class_forms(setup):
    net, x = setup
    by_output = class_sensitivity(net, x, [2, 7], layers=["relu2", "fc"])
    by_layer = class_sensitivity(net, x, [2, 7], layers=["relu2", "fc"], logits_layer="fc")
    np.testing.assert_allclose(by_output["value"], by_layer["value"], rtol=1e-12)
    assert by_output["class"].tolist() == ["2", "7", "2", "7"]
    # the logits layer against its own columns is a perfect correlation
    fc = by_output[by_output.layer == "fc"]["value"].to_numpy()
    np.testing.assert_allclose(fc, 1.0, atol=1e-8)
    one = class_sensitivity(net, x, 4, layers=["pool"], conv="mean")
    assert one["class_index"].tolist() == [4] and one.attrs["classes"] == {"4": 4}
    assert net.training is False  # mode untouched


def test_plot_and_report(setup, tmp_path):
    from nncompare.report._dynamics import write_sensitivity_report

    net, x = setup
    df = class_sensitivity(net, x, {"one": 1, "seven": 7}, layers=["relu1", "relu2", "pool"])
    fig = nc.plot.class_sensitivity_curves(df)
    assert len(fig.axes[0].lines) == 2
    files = write_sensitivity_report(df, tmp_path / "rep")
    html = files.html.read_text()
    assert 'id="class-sensitivity"' in html and "seven" in html
    import json

    doc = json.loads(files.json.read_text())
    assert doc["format"] == "nncompare.class_sensitivity" and len(doc["records"]) == 6


def test_bad_input(setup):
    net, x = setup
    with pytest.raises(ValueError, match=r"class index in \[3, 10\] is outside the logits"):
        class_sensitivity(net, x[:20], [3, 10], layers=["pool"])
    with pytest.raises(ValueError, match=r"measure must be one of cca, svcca, cca_r2 .*'cka'"):
        class_sensitivity(net, x[:20], [1], measure="cka")
    with pytest.raises(ValueError, match=r"conv must be 'dft', 'mean' or 'flatten' .*'samples'"):
        class_sensitivity(net, x[:20], [1], conv="samples")
    with pytest.raises(ValueError, match=r"classes is empty; pass class indices"):
        class_sensitivity(net, x[:20], [])
    with pytest.raises(TypeError, match=r"expected integer class indices .*'cat'"):
        class_sensitivity(net, x[:20], ["cat"])
    with pytest.raises(ValueError, match=r"class index -1 of '-1' is negative"):
        class_sensitivity(net, x[:20], [-1])
    from nncompare.capture import LayerNotFoundError

    with pytest.raises(LayerNotFoundError, match=r"logits_layer 'head' is not a module of"):
        class_sensitivity(net, x[:20], [1], logits_layer="head")


# ----------------------------------------------------------------------------- CLI

MODEL = "nncompare.models:SmallCNN(in_channels=1)"


@pytest.fixture(scope="module")
def npz(setup, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=setup[1].numpy())
    return path


def _run(runner, args):
    from nncompare.cli.main import cli

    return runner.invoke(cli, args, catch_exceptions=False)


def test_cli_class_sensitivity(runner, npz, tmp_path):
    out = tmp_path / "sens"
    got = _run(runner, ["class-sensitivity", MODEL, "--data", str(npz), "--classes",
                        "zero=0,one=1", "--layers", "relu1,pool", "--out", str(out)])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert "class sensitivity of" in got.output and "2 layers x 2 classes" in got.output
    assert (out / "report.html").exists()


def test_parse_classes():
    from nncompare.cli.dynamics import parse_classes

    assert parse_classes("automobile,truck,frog") == {"automobile": 1, "truck": 9, "frog": 6}
    assert parse_classes("1, cat=3") == {"1": 1, "cat": 3}


@pytest.mark.parametrize(
    ("classes", "pattern"),
    [
        ("zebra", r"Invalid value for --classes: 'zebra' is neither a class index nor a CIFAR"),
        ("a=1,,b=2", r"Invalid value for --classes: .*an empty entry"),
        ("x=12", r"Invalid value for --classes: the model has 10 logits .*x=12 is outside"),
        ("a=1,a=2", r"Invalid value for --classes: class 'a' is named twice"),
    ],
)
def test_cli_errors_are_one_line(runner, npz, tmp_path, classes, pattern):
    got = _run(runner, ["class-sensitivity", MODEL, "--data", str(npz), "--classes", classes,
                        "--out", str(tmp_path / "o")])  # fmt: skip
    assert got.exit_code != 0
    lines = [ln for ln in got.output.splitlines() if ln.startswith("Error")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), got.output


def test_cli_bad_logits_layer(runner, npz, tmp_path):
    got = _run(runner, ["class-sensitivity", MODEL, "--data", str(npz), "--classes", "1",
                        "--logits-layer", "head", "--out", str(tmp_path / "o")])  # fmt: skip
    assert got.exit_code != 0
    assert re.search(
        r"Invalid value for --logits-layer: 'head' is not a layer of MODEL", got.output
    )


# ------------------------------------------------------------ the pretrained ResNet-20


@pytest.mark.shared
@pytest.mark.slow
def test_pretrained_resnet20_similar_classes_close(shared_dir):
    """ResNet-20 (akamaster weights) on the 1017 pixel-exact CIFAR-10 test images: every
    value is defined, the linear layer matches each logit exactly, and the pair of similar
    classes (cat, dog) lies closer together than cat and the distinct frog, averaged over
    the layers (the paper's Fig. 6 observation; benchmarks/svcca_analyses.py has all 10,000
    images)."""
    ck = shared_dir / "data" / "akamaster_resnet_cifar10" / "resnet20-12fca82f.th"
    data = shared_dir / "data" / "cifar10" / "cifar10_test_exact1017.npz"
    if not ck.exists() or not data.exists():
        pytest.skip("ResNet-20 weights or CIFAR-10 test images not in ../shared/data")
    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    net = cifar_resnet(20, weights=ck)
    with np.load(data) as f:
        x = cifar_preprocess(f["x"])
    df = class_sensitivity(net, x, {"cat": 3, "dog": 5, "frog": 6})
    assert df["error"].isna().all() and df["value"].between(0, 1 + 1e-9).all()
    wide = df.pivot(index="layer", columns="class", values="value")
    np.testing.assert_allclose(wide.loc["linear"], 1.0, atol=1e-8)
    assert (wide["cat"] - wide["dog"]).abs().mean() < (wide["cat"] - wide["frog"]).abs().mean()


def test_unknown_layer_is_named_in_the_users_model(setup):
    """The logits wrapper is an implementation detail: the error names the user's model and
    layer ('relu9' in SmallCNN), not 'net.relu9' in an internal wrapper."""
    from nncompare.capture import LayerNotFoundError

    net, x = setup
    with pytest.raises(
        LayerNotFoundError, match=r"^No layer named 'relu9' in SmallCNN\. Did you mean"
    ):
        class_sensitivity(net, x[:20], [1], layers=["relu9"])
    with pytest.raises(
        LayerNotFoundError, match=r"^The pattern 'fc\?\?' matched no layer of SmallCNN"
    ):
        class_sensitivity(net, x[:20], [1], layers=["fc??"])
