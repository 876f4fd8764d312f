"""Learning dynamics (issue #13 item 1; Raghu et al. 2017 §4.1) and the cross-model DFT
comparison (item 5): nc.analyses.learning_dynamics against compare_models run checkpoint by
checkpoint, convergence steps, bottom-up convergence of the demo's digit CNN, the plot, the
report section, nncompare dynamics and its one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

import nncompare as nc
from nncompare.analyses import convergence_steps, learning_dynamics

LAYERS = ["relu1", "maxpool1", "relu2", "pool", "fc"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    from nncompare.workbench.data import load_digits

    return load_digits("train"), load_digits("test")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """The demo's SmallCNN and recipe, 10 epochs, a checkpoint every epoch (0 = init)."""
    from nncompare.workbench.models import SmallCNN
    from nncompare.workbench.training import train

    tr = digits[0]
    torch.manual_seed(0)
    net = SmallCNN(in_channels=1, num_classes=10)
    res = train(
        net,
        tr,
        epochs=10,
        lr=0.05,
        seed=0,
        batch_size=64,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="cosine",
        checkpoint_dir=tmp_path_factory.mktemp("ckpt"),
        checkpoint_every=list(range(11)),
    )
    return net, res


@pytest.fixture(scope="module")
def dyn(trained, digits):
    net, res = trained
    return learning_dynamics(net, res, digits[1].x, layers=LAYERS, measure=["svcca", "cka"])


def test_frame_schema_and_attrs(dyn, trained):
    _, res = trained
    assert list(dyn.columns[:6]) == ["checkpoint", "step", "layer_a", "layer_b", "measure", "value"]
    n_ck = len(res.checkpoints)
    assert len(dyn) == n_ck * len(LAYERS) * len(LAYERS) * 2
    assert dyn.attrs["checkpoints"] == [p.stem for p in res.checkpoints]
    assert dyn.attrs["steps"] == res.checkpoint_steps
    assert dyn.attrs["layers"] == LAYERS
    assert dyn["error"].isna().all()
    # the final network against itself: the diagonal is 1
    last = dyn[(dyn.checkpoint == res.checkpoints[-1].stem) & (dyn.layer_a == dyn.layer_b)]
    np.testing.assert_allclose(last["value"], 1.0, atol=1e-8)


def test_equals_compare_models_checkpoint_by_checkpoint(dyn, trained, digits):
    from nncompare.workbench.models import SmallCNN

    res = trained[1]
    final = SmallCNN(in_channels=1, num_classes=10)
    final.load_state_dict(torch.load(res.checkpoints[-1], weights_only=True))
    for ck in (res.checkpoints[0], res.checkpoints[3], res.checkpoints[7]):
        m = SmallCNN(in_channels=1, num_classes=10)
        m.load_state_dict(torch.load(ck, weights_only=True))
        ref = nc.compare_models(
            m, final, digits[1].x, layers_a=LAYERS, layers_b=LAYERS, measures=["svcca", "cka"]
        )
        got = dyn[dyn.checkpoint == ck.stem]
        merged = got.merge(ref, on=["layer_a", "layer_b", "measure"], suffixes=("", "_ref"))
        assert len(merged) == len(LAYERS) ** 2 * 2
        np.testing.assert_allclose(merged["value"], merged["value_ref"], rtol=1e-9, atol=1e-12)


def test_inputs_as_paths_folder_state_dicts_and_final(trained, digits, dyn):
    net, res = trained
    x = digits[1].x[:200]
    paths = [str(p) for p in res.checkpoints[::3]]
    by_path = learning_dynamics(net, paths, x, layers=["relu1", "pool"])
    states = [torch.load(p, weights_only=True) for p in paths]
    by_state = learning_dynamics(net, states, x, layers=["relu1", "pool"])
    np.testing.assert_allclose(by_path["value"], by_state["value"], rtol=1e-12)
    assert list(dict.fromkeys(by_state["checkpoint"])) == ["0", "1", "2", "3"]
    folder = learning_dynamics(net, res.checkpoints[0].parent, x, layers=["relu1", "pool"])
    assert folder.attrs["checkpoints"] == [p.stem for p in res.checkpoints]
    # an explicit final network equal to the last checkpoint gives the same values
    explicit = learning_dynamics(
        net, paths[:-1], x, layers=["relu1", "pool"], final=paths[-1], steps=[0, 3, 6]
    )
    same = by_path[by_path.checkpoint != by_path.checkpoint.iloc[-1]]
    np.testing.assert_allclose(explicit["value"], same["value"], rtol=1e-12)
    assert explicit.attrs["final"] == "final"
    assert explicit["step"].drop_duplicates().tolist() == [0, 3, 6]


def test_convergence_steps_rule():
    """First checkpoint from which the value stays at or above the threshold."""
    vals = {"a": [0.5, 0.95, 0.8, 0.92, 1.0], "b": [0.99, 0.99, 0.99, 0.99, 1.0],
            "c": [0.1, 0.2, 0.3, 0.4, 0.85]}  # fmt: skip
    rows = [
        {"checkpoint": f"c{t}", "step": 10 * t, "layer_a": lay, "layer_b": lay,
         "measure": "svcca", "value": v}
        for lay, vs in vals.items()
        for t, v in enumerate(vs)
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    got = convergence_steps(df, 0.9).set_index("layer")
    assert got.loc["a", "converged_step"] == 30
    assert got.loc["a", "converged_checkpoint"] == "c3"
    assert got.loc["b", "converged_step"] == 0
    assert pd.isna(got.loc["c", "converged_step"])
    assert got.loc["c", "final_value"] == pytest.approx(0.85)


def test_lower_layers_converge_earlier_on_the_demo_cnn(dyn):
    """Bottom-up convergence (Raghu et al. Fig. 4) on the digit CNN: the first conv block's
    output settles no later than the second's, at two thresholds. (The logits ``fc`` are
    not ordered with the rest: their 10-dim SVCCA settles early at this scale.)"""
    for threshold in (0.9, 0.95):
        steps = convergence_steps(dyn, threshold, measure="svcca").set_index("layer")
        s = steps["converged_step"]
        assert s.notna().all()
        assert s["relu1"] <= s["relu2"]
        assert s["maxpool1"] <= s["pool"]


def test_plots(dyn):
    fig = nc.plot.dynamics_grid(dyn, measure="svcca", max_panels=4)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    fig = nc.plot.convergence_curves(dyn, measure="svcca", threshold=0.9)
    assert len(fig.axes[0].lines) == len(LAYERS) + 1  # a line per layer and the threshold
    two = dyn.assign(measure=dyn["measure"].replace("svcca", "cca"))
    with pytest.raises(ValueError, match=r"several measures \(cca, cka\); pass measure="):
        nc.plot.dynamics_grid(two)
    with pytest.raises(ValueError, match=r"expects the frame of nc.analyses.learning_dynamics"):
        nc.plot.convergence_curves(dyn.drop(columns="step"))


def test_report_section_and_files(dyn, digits, trained, tmp_path):
    net, _ = trained
    one = dyn[dyn.measure == "svcca"].copy()
    one.attrs = dict(dyn.attrs)
    cmp_ = nc.compare_models(net, net, digits[1].x[:100], layers_a=LAYERS, measures=["cka"])
    files = nc.report.write_report(cmp_, tmp_path / "rep", dynamics=one)
    html = files.html.read_text()
    assert 'id="dynamics"' in html and "Convergence step per layer" in html
    assert (tmp_path / "rep" / "dynamics.csv").exists()
    import json

    doc = json.loads((tmp_path / "rep" / "dynamics.json").read_text())
    assert doc["format"] == "nncompare.dynamics"
    conv = {r["layer"]: r["converged_step"] for r in doc["convergence"]}
    expected = convergence_steps(one, 0.9).set_index("layer")["converged_step"]
    assert conv == {k: int(v) for k, v in expected.items()}


def test_bad_input(trained, digits):
    net, res = trained
    x = digits[1].x[:50]
    with pytest.raises(ValueError, match=r"checkpoints is empty; pass at least one"):
        learning_dynamics(net, [], x)
    with pytest.raises(TypeError, match=r"got a single mapping\. Wrap one state dict in a list"):
        learning_dynamics(net, net.state_dict(), x)
    with pytest.raises(ValueError, match=r"in training order, but their steps decrease"):
        learning_dynamics(net, res.checkpoints[:2], x, steps=[5, 1])
    with pytest.raises(ValueError, match=r"labels must be unique, one per checkpoint: got 1"):
        learning_dynamics(net, res.checkpoints[:2], x, labels=["a"])
    with pytest.raises(TypeError, match=r"checkpoint '0' must be a state dict or a path"):
        learning_dynamics(net, [3.0], x)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]; got 2"):
        convergence_steps(learning_dynamics(net, res.checkpoints[:2], x, layers=["fc"]), 2)
    with pytest.raises(ValueError, match=r"lacks checkpoint, layer_a"):
        convergence_steps(pd.DataFrame({"value": [1.0]}))


# ----------------------------------------------------------- item 5: cross-model DFT


def test_cross_model_dft_convnet_vs_resnet_resize_path():
    """A conv net against a ResNet layer x layer with conv="dft": maps of different sizes
    (16x16 vs 8x8) are compared on the frequencies both have; one pair equals nc.svcca by
    hand on the captured activations."""
    from nncompare.workbench.models import SmallCNN, cifar_resnet

    torch.manual_seed(0)
    cnn = SmallCNN(in_channels=3, num_classes=10, widths=(8, 16), image_size=16).eval()
    res = cifar_resnet(8).eval()
    x = torch.randn(300, 3, 16, 16)
    df = nc.compare_models(
        cnn, res, x, layers_a=["relu1", "relu2"], layers_b=["layer1", "layer3"],
        measures=["svcca"], conv="dft",
    )  # fmt: skip
    assert set(df["policy"]) == {"dft"}
    assert df["value"].between(0, 1).all() and df["error"].isna().all()
    acts = {}
    hooks = [
        cnn.relu1.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o)),
        res.layer3.register_forward_hook(lambda m, i, o: acts.__setitem__("b", o)),
    ]
    with torch.no_grad():
        cnn(x), res(x)
    for h in hooks:
        h.remove()
    assert acts["a"].shape[-1] == 16 and acts["b"].shape[-1] == 4  # different sizes
    by_hand = nc.svcca(
        acts["a"].double().numpy(), acts["b"].double().numpy(), conv="dft", layout="NCHW"
    )
    got = df[(df.layer_a == "relu1") & (df.layer_b == "layer3")]["value"].item()
    assert got == pytest.approx(float(by_hand.value), rel=1e-8)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def npz(digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    te = digits[1]
    np.savez(path, x=np.asarray(te.x), y=np.asarray(te.y))
    return path


MODEL = "nncompare.models:SmallCNN(in_channels=1)"


def _run(runner, args):
    from nncompare.cli.main import cli

    return runner.invoke(cli, args, catch_exceptions=False)


def test_cli_dynamics_writes_report(runner, trained, npz, tmp_path):
    _, res = trained
    out = tmp_path / "dyn"
    folder = str(res.checkpoints[0].parent)
    got = _run(runner, ["dynamics", MODEL, "--checkpoints", folder, "--data", str(npz),
                        "--layers", "relu1,pool", "--out", str(out)])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert f"{len(res.checkpoints)} checkpoints x 2 layers" in got.output, got.output[-600:]
    assert (out / "report.html").exists() and (out / "results.csv").exists()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--measure", "nope"], r"Invalid value for --measure: unknown measure 'nope'"),
        (["--layers", "nolayer"], r"Invalid value for --layers: .*nolayer"),
        (["--threshold", "2"], r"Invalid value for '--threshold'"),
    ],
)
def test_cli_dynamics_errors_are_one_line(runner, trained, npz, tmp_path, extra, pattern):
    _, res = trained
    got = _run(runner, ["dynamics", MODEL, "--checkpoints", str(res.checkpoints[0].parent),
                        "--data", str(npz), "--out", str(tmp_path / "o"), *extra])  # fmt: skip
    assert got.exit_code != 0
    lines = [ln for ln in got.output.splitlines() if ln.startswith("Error")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), got.output


def test_cli_dynamics_needs_two_checkpoints(runner, trained, npz, tmp_path):
    _, res = trained
    got = _run(runner, ["dynamics", MODEL, "--checkpoints", str(res.checkpoints[-1]),
                        "--data", str(npz), "--out", str(tmp_path / "o")])  # fmt: skip
    assert got.exit_code != 0
    assert re.search(r"--checkpoints: learning dynamics needs at least two checkpoints .*got 1",
                     got.output)  # fmt: skip


@pytest.mark.slow
def test_demo_report_has_the_learning_dynamics_panel(tmp_path):
    """The demo saves net A at a few epochs; its report gains the learning-dynamics section
    (panels, curves, the convergence table) and dynamics.csv / dynamics.json."""
    pytest.importorskip("sklearn")
    from nncompare.demo import run_demo

    lines: list[str] = []
    res = run_demo(tmp_path / "demo", epochs=4, stitching=False, alignment=False,
                   weights=False, log=lines.append)  # fmt: skip
    assert res.dynamics is not None
    assert res.dynamics.attrs["checkpoints"] == [f"epoch{e:04d}" for e in (0, 1, 2, 3, 4)]
    assert res.dynamics.attrs["layers"] == [*LAYERS]
    html = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    assert 'id="dynamics"' in html and "Convergence step per layer" in html
    assert (tmp_path / "demo" / "dynamics.csv").exists()
    assert any(line.startswith("learning dynamics of net A over 5 checkpoints") for line in lines)
    off = run_demo(tmp_path / "off", epochs=1, stitching=False, alignment=False, weights=False,
                   dynamics=False, log=lambda _s: None)  # fmt: skip
    assert off.dynamics is None
    assert 'id="dynamics"' not in (tmp_path / "off" / "report.html").read_text(encoding="utf-8")
