"""Freeze Training (issue #13 item 2; Raghu et al. 2017, §4.2): nc.training.train(freeze=...)."""

from __future__ import annotations

import pytest
import torch

from nncompare.data import load_digits
from nncompare.models import SmallCNN, cifar_resnet
from nncompare.training import (
    FreezeSchedule,
    freeze_experiment,
    freeze_stages,
    summarize_freeze,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    tr, te = load_digits("train"), load_digits("test")
    return (tr.x[:256], tr.y[:256]), (te.x[:128], te.y[:128])


def _net(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


def test_default_stages_follow_forward_order_with_norms_joined_and_resnet_blocks():
    assert freeze_stages(SmallCNN()) == [
        ("conv1", ("conv1", "bn1")),
        ("conv2", ("conv2", "bn2")),
        ("fc", ("fc",)),
    ]
    names = [name for name, _ in freeze_stages(cifar_resnet(8))]
    assert names == ["conv1", "layer1.0", "layer2.0", "layer3.0", "linear"]
    # ResNet-20: three blocks per stage, each its own stage
    assert len(freeze_stages(cifar_resnet(20))) == 1 + 9 + 1


def test_linear_schedule_steps():
    steps = FreezeSchedule.linear().steps(SmallCNN(), total_steps=90)
    assert steps == [("conv1", 30), ("conv2", 60), ("fc", 90)]


def test_frozen_stages_get_no_gradient_and_stay_bit_identical(digits, tmp_path):
    train_data, _ = digits
    net = _net()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    calls = {"conv1": 0, "conv2_after": 0}
    net.conv1.weight.register_hook(lambda g: calls.__setitem__("conv1", calls["conv1"] + 1))
    schedule = FreezeSchedule(fractions=[0.0, 0.5, 1.0])
    # 256 samples / 64 = 4 steps per epoch, 4 epochs = 16 steps; conv2 freezes after 8
    res = train(
        net,
        train_data,
        epochs=4,
        lr=0.1,
        seed=0,
        freeze=schedule,
        checkpoint_dir=tmp_path,
        checkpoint_every=[8],
        checkpoint_unit="step",
    )
    assert res.info["freeze"]["freeze_steps"] == [0, 8, 16]
    # conv1 (and bn1, running statistics included) never changed, its hook never ran
    assert calls["conv1"] == 0
    for key in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"):
        assert torch.equal(net.state_dict()[key], initial[key]), key
    # conv2 equals its state at step 8, when it froze; fc kept training
    at8 = torch.load(res.checkpoints[0], weights_only=True)
    for key in ("conv2.weight", "bn2.weight", "bn2.running_mean"):
        assert torch.equal(net.state_dict()[key], at8[key]), key
    assert not torch.equal(net.fc.weight, at8["fc.weight"])
    # no .grad on frozen parameters, the last stage has one
    assert net.conv1.weight.grad is None and net.conv2.weight.grad is None
    assert net.fc.weight.grad is not None
    # requires_grad flags are given back
    assert all(p.requires_grad for p in net.parameters())


def test_schedule_freezes_in_order_and_records_compute(digits):
    train_data, eval_data = digits
    res = train(_net(), train_data, epochs=6, lr=0.1, seed=0, freeze="linear", eval_data=eval_data)
    frozen = [e.frozen for e in res.history]
    assert frozen == [(), (), ("conv1",), ("conv1",), ("conv1", "conv2"), ("conv1", "conv2")]
    per_sample = res.info["freeze"]["backward_flops_per_sample"]
    assert per_sample[0] > per_sample[1] > per_sample[2] > 0
    for e in res.history:
        full = per_sample[0] * e.samples
        assert e.backward_flops + e.backward_flops_saved == pytest.approx(full)
    assert res.history[0].backward_flops_saved == 0
    assert res.history[-1].backward_flops_saved > 0.9 * per_sample[0] * res.history[-1].samples


def test_without_freeze_nothing_is_recorded_and_weights_match_same_seed(digits):
    train_data, _ = digits
    a, b = _net(), _net()
    ra = train(a, train_data, epochs=1, lr=0.1, seed=3)
    train(b, train_data, epochs=1, lr=0.1, seed=3, freeze=FreezeSchedule(fractions=[1, 1, 1]))
    assert ra.history[0].frozen == () and ra.history[0].backward_flops is None
    # a schedule that freezes nothing trains the very same weights
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka


def test_resnet_blocks_freeze_in_forward_order():
    torch.manual_seed(0)
    net = cifar_resnet(8)
    x = torch.randn(32, 3, 16, 16)
    y = torch.randint(0, 10, (32,))
    res = train(net, (x, y), epochs=5, lr=0.05, seed=0, batch_size=32, freeze="linear")
    # one step per epoch; stage i of 5 freezes after step i, so from epoch i + 1 on
    assert [e.frozen for e in res.history] == [
        (),
        ("conv1",),
        ("conv1", "layer1.0"),
        ("conv1", "layer1.0", "layer2.0"),
        ("conv1", "layer1.0", "layer2.0", "layer3.0"),
    ]


def test_freeze_experiment_schema_and_saved_compute(digits):
    train_data, eval_data = digits
    runs, history = freeze_experiment(
        _net, train_data, eval_data, seeds=(0, 1), name="cnn", epochs=3, lr=0.1
    )
    assert set(runs["mode"]) == {"normal", "freeze"} and len(runs) == 4
    normal = runs[runs["mode"] == "normal"]
    frozen = runs[runs["mode"] == "freeze"]
    assert (normal["backward_flops_saved"] == 0).all()
    assert (frozen["saved_fraction"] > 0.2).all()
    assert (frozen["backward_flops"].to_numpy() < normal["backward_flops"].to_numpy()).all()
    assert len(history) == 2 * 2 * 3
    summary = summarize_freeze(runs)
    assert list(summary["n_seeds"]) == [2, 2]
    assert {"test_accuracy_mean", "test_accuracy_std", "saved_fraction_mean"} <= set(summary)


def test_bad_freeze_arguments_are_explained(digits):
    train_data, _ = digits
    with pytest.raises(ValueError, match=r"freeze must be None, 'linear' or a .*FreezeSchedule"):
        train(_net(), train_data, epochs=1, lr=0.1, seed=0, freeze="cubic")
    with pytest.raises(ValueError, match=r"has 2 fractions for 3 stages"):
        train(_net(), train_data, epochs=1, lr=0.1, seed=0, freeze=FreezeSchedule(fractions=[0, 1]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] and not decrease"):
        FreezeSchedule(fractions=[0.5, 0.2, 1.0]).resolve(SmallCNN())
    with pytest.raises(ValueError, match=r"names module 'conv9', which the model \(SmallCNN\)"):
        FreezeSchedule(stages=["conv1", "conv9"]).resolve(SmallCNN())
    with pytest.raises(TypeError, match=r"got the string 'conv1'; write \['conv1'\]"):
        FreezeSchedule(stages="conv1").resolve(SmallCNN())
    with pytest.raises(ValueError, match=r"at least one seed"):
        freeze_experiment(_net, train_data, train_data, seeds=(), epochs=1, lr=0.1)


def test_cli_train_with_freeze_linear(runner, tmp_path):
    from nncompare.cli.main import cli

    out = tmp_path / "run"
    res = runner.invoke(
        cli,
        ["train", "nncompare.models:SmallCNN()", "--data", "digits", "--test-data", "digits",
         "--epochs", "3", "--freeze", "linear", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "frozen conv1" in res.output and "backward FLOPs saved by Freeze Training" in res.output
    assert (out / "final.pt").is_file()
    import json

    doc = json.loads((out / "history.json").read_text())
    assert doc["info"]["freeze"]["stages"] == ["conv1", "conv2", "fc"]
    assert doc["history"][0]["frozen"] == []


def test_cli_train_bad_data_is_one_line(runner, tmp_path):
    from nncompare.cli.main import cli

    bad = tmp_path / "x.npz"
    import numpy as np

    np.savez(bad, inputs=np.zeros((4, 64)))
    res = runner.invoke(cli, ["train", "nncompare.models:MLP(in_features=64)", "--data", str(bad)])
    assert res.exit_code != 0
    assert "holds arrays ['inputs']; expected 'x' (inputs) and 'y'" in res.output


def test_freeze_report_and_plot(digits, tmp_path):
    import nncompare as nc
    from nncompare.report._compression import write_freeze_report

    train_data, eval_data = digits
    runs, history = freeze_experiment(
        _net, train_data, eval_data, seeds=(0, 1), name="cnn", epochs=3, lr=0.1
    )
    files = write_freeze_report(runs, history, tmp_path)
    html = files.html.read_text()
    assert 'id="freeze"' in html and "Backward FLOPs saved" in html
    fig = nc.plot.freeze_curves(history, freeze_steps=[4, 8])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match=r"freeze_curves expects a frame with columns"):
        nc.plot.freeze_curves(runs)
