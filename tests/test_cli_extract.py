"""``nncompare extract`` (issue 7, item 6): activations to disk in the atomic cache format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import nncompare as nc
from cli_util import error_line as _error
from nncompare.capture import default_layers, load_cache
from nncompare.cli.main import cli
from nncompare.workbench.data import prepare_images
from nncompare.workbench.models import SmallCNN, cifar_preprocess, cifar_resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = "nncompare.models:SmallCNN(in_channels=3)"


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    net = SmallCNN(in_channels=3).eval()
    weights = tmp_path / "w.pt"
    torch.save(net.state_dict(), weights)
    images = (np.random.default_rng(0).random((70, 8, 8, 3)) * 255).astype(np.uint8)
    data = tmp_path / "images.npz"
    np.savez(data, x=images)
    base = ["extract", SPEC, "--weights", str(weights), "--data", str(data), "--no-progress"]
    return {"dir": tmp_path, "net": net, "images": images, "base": base}


def test_extract_then_load_cache_equals_a_direct_capture(runner, setup):
    out = setup["dir"] / "acts"
    res = runner.invoke(cli, [*setup["base"], "--layers", "conv1,relu2,fc", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote 3 layers × 70 samples: {out.resolve()}" in res.output
    assert "layout: read (70, 8, 8, 3) as NHWC (inferred), moved channels first" in res.output
    assert "conv layers are stored as torch returns them, channels first (N, C, H, W)" in (
        res.output
    )
    assert f"acts = nc.capture.load_cache({str(out.resolve())!r})" in res.output
    acts = load_cache(out)
    assert acts.names == ["conv1", "relu2", "fc"]
    # the same inputs prepared in Python, captured directly: identical arrays
    x = prepare_images(setup["images"], channels=3).x
    direct = nc.capture(setup["net"], x, ["conv1", "relu2", "fc"])
    for name in acts.names:
        np.testing.assert_array_equal(acts[name], direct[name])
    # and the stored layout is torch's: conv1 of images transposed and scaled by hand
    by_hand = torch.from_numpy(setup["images"].transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with torch.no_grad():
        ref = setup["net"].conv1(by_hand).numpy()
    assert acts["conv1"].shape == (70, 16, 8, 8)
    np.testing.assert_allclose(acts["conv1"], ref, rtol=1e-5, atol=1e-6)


def test_manifest_fields_are_the_documented_ones(runner, setup):
    out = setup["dir"] / "acts"
    res = runner.invoke(cli, [*setup["base"], "--layers", "relu1,fc", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "nncompare.activations" and manifest["complete"] is True
    for key in ("format_version", "created_utc", "model", "n_samples", "options", "data"):
        assert key in manifest, key
    assert manifest["n_samples"] == 70 and manifest["options"]["layers"] == ["relu1", "fc"]
    assert manifest["model"]["class"].endswith("SmallCNN")
    layers = {e["name"]: e for e in manifest["layers"]}
    assert layers["relu1"]["shape"] == [70, 16, 8, 8] and layers["fc"]["shape"] == [70, 10]
    assert layers["relu1"]["file"] == "layer_000.npy" and layers["relu1"]["dtype"] == "<f4"
    assert layers["fc"]["checksum"]["algorithm"]
    # plain .npy files, readable without nncompare
    assert np.load(out / "layer_001.npy").shape == (70, 10)


def test_default_layers_and_granularity(runner, setup):
    out = setup["dir"] / "blocks"
    res = runner.invoke(cli, [*setup["base"], "--out", str(out)])
    assert res.exit_code == 0, res.output
    expected = default_layers(setup["net"])
    assert f"layers: {len(expected)} blocks of the model (the default; choose with --layers)" in (
        res.output
    )
    assert load_cache(out).names == expected
    out = setup["dir"] / "leaves"
    res = runner.invoke(cli, [*setup["base"], "--granularity", "leaves", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert load_cache(out).names == default_layers(setup["net"], "leaves")
    line = _error(
        runner.invoke(
            cli, [*setup["base"], "--granularity", "leaves", "--layers", "fc", "--out", str(out)]
        )
    )
    assert line == (
        "Error: Invalid value for --granularity: --granularity chooses the default layers, so "
        "it cannot go with --layers; drop one of the two"
    )


def test_rerun_reuses_and_a_different_capture_needs_overwrite(runner, setup):
    out = setup["dir"] / "acts"
    args = [*setup["base"], "--out", str(out)]
    assert runner.invoke(cli, [*args, "--layers", "fc"]).exit_code == 0
    res = runner.invoke(cli, [*args, "--layers", "fc"])
    assert res.exit_code == 0, res.output
    assert "reused the existing cache of 1 layer × 70 samples (same model, layers, options " in (
        res.output
    )
    line = _error(runner.invoke(cli, [*args, "--layers", "relu1"]))
    assert line.startswith(f"Error: The activation cache at {str(out)!r} does not match this ")
    assert "layers differs (cache ['fc'], now ['relu1'])" in line
    assert line.endswith("Delete it, choose another --out, or pass --overwrite to replace it.")
    res = runner.invoke(cli, [*args, "--layers", "relu1", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert load_cache(out).names == ["relu1"]


def test_out_that_is_not_a_cache_is_never_replaced(runner, setup):
    folder = setup["dir"] / "my-documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    args = [*setup["base"], "--layers", "fc", "--out", str(folder)]
    for extra in ([], ["--overwrite"]):
        line = _error(runner.invoke(cli, [*args, *extra]))
        assert line == (
            f"Error: Invalid value for --out: {folder} exists and is not an nncompare "
            "activation cache (no valid manifest.json), so nothing is written there, even "
            "with --overwrite: choose a new directory"
        )
    assert (folder / "thesis.tex").read_text() == "precious"
    a_file = setup["dir"] / "file.txt"
    a_file.write_text("x")
    line = _error(runner.invoke(cli, [*setup["base"], "--out", str(a_file)]))
    assert line == f"Error: Invalid value for '--out': Directory '{a_file}' is a file."


def test_extract_errors(runner, setup):
    out = str(setup["dir"] / "x")
    line = _error(runner.invoke(cli, [*setup["base"], "--layers", "relu3", "--out", out]))
    assert line.startswith(
        "Error: Invalid value for --layers: No layer named 'relu3' in SmallCNN. Did you mean"
    )
    line = _error(runner.invoke(cli, [*setup["base"], "--channels-first", "--out", out]))
    assert line == (
        "Error: cannot use the inputs in --data images.npz: images of shape (70, 8, 8, 3) read "
        "as NCHW have 8 channels, but the model expects 3. If they are NHWC, say so "
        "(--channels-last)."
    )
    res = runner.invoke(cli, ["extract", SPEC, "--data", str(setup["dir"] / "images.npz")])
    assert res.exit_code == 2 and "Missing option '--out'" in res.output
    assert not Path(out).exists()


@pytest.mark.shared
def test_shared_cifar_logits_give_the_published_accuracy(runner, shared_dir, tmp_path):
    """``extract`` of the pretrained ResNet-20's logits on the shared uint8 NHWC CIFAR-10
    file with ``--preset cifar``: 91.64% on these 1017 images (shared/data README,
    also asserted in test_models.py), so layout, scale and normalisation are right."""
    data = shared_dir / "data" / "cifar10" / "cifar10_test_exact1017.npz"
    ckpt = sorted((shared_dir / "data" / "akamaster_resnet_cifar10").glob("resnet20-*.th"))
    if not data.is_file() or not ckpt:
        pytest.skip("shared CIFAR-10 images or the pretrained ResNet-20 not found")
    out = tmp_path / "r20"
    res = runner.invoke(
        cli,
        [
            "extract",
            "nncompare.models:cifar_resnet(depth=20)",
            "--weights",
            str(ckpt[0]),
            "--data",
            str(data),
            "--preset",
            "cifar",
            "--layers",
            "layer3.2,linear",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    acts = load_cache(out)
    with np.load(data) as f:
        images, y = f["x"], f["y"]
    accuracy = float((np.asarray(acts["linear"]).argmax(1) == y).mean())
    assert accuracy == pytest.approx(0.9164, abs=5e-4)
    assert acts["layer3.2"].shape == (1017, 64, 8, 8)
    # the stored activations are those of nc.capture on nc.models.cifar_preprocess inputs
    x = cifar_preprocess(images[:64])
    direct = nc.capture(cifar_resnet(20, weights=ckpt[0]).eval(), x, ["linear"])
    np.testing.assert_allclose(acts["linear"][:64], direct["linear"], rtol=1e-5, atol=1e-5)
