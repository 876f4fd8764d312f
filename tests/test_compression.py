"""Compression by SVCCA projection (issue #13 item 4; Raghu et al. 2017, §4.4, App. F)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import nncompare as nc
from nncompare.analyses import compression_sweep, svcca_compress
from nncompare.data import load_digits
from nncompare.models import MLP, GlobalAvgPool
from nncompare.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits("train"), load_digits("test")


@pytest.fixture(scope="module")
def mlp(digits):
    """A trained tanh MLP 64 -> 24 -> 16 -> 10 (tanh units: full-rank layers)."""
    torch.manual_seed(0)
    net = MLP(64, hidden=(24, 16), activation="tanh")
    train(net, digits[0], epochs=8, lr=0.1, seed=0)
    return net


def _cnn() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 8, 3, padding=1),
            relu1=nn.ReLU(),
            pool=GlobalAvgPool(),
            fc1=nn.Linear(8, 12),
            relu2=nn.ReLU(),
            fc2=nn.Linear(12, 10),
        )
    )


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_full_rank_reproduces_the_model_and_counts_are_exact(mlp, digits):
    train_data, test_data = digits
    before = _state(mlp)
    res = svcca_compress(mlp, "tanh1", train_data, 24, eval_data=test_data, keep=1.0)
    x = torch.as_tensor(test_data.x, dtype=torch.float32)
    with torch.no_grad():
        # full rank: the projector is the identity, on inputs not used for fitting too
        torch.testing.assert_close(res.model(x), mlp(x), atol=2e-5, rtol=1e-5)
    assert res.accuracy == res.original_accuracy
    # fc2 (24 -> 16) becomes project (24 -> k, no bias) + linear (k -> 16): m n -> k (n + m)
    n, m, k = 24, 16, 24
    assert res.params == res.original_params - m * n + k * (n + m)
    assert res.flops == res.original_flops + 2 * (k * n + k * m - m * n)
    assert isinstance(res.model.fc2, nn.Sequential) and res.next_layer == "fc2"
    # the original is untouched
    assert isinstance(mlp.fc2, nn.Linear)
    for key, value in mlp.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("k", [1, 4, 9])
def test_parameter_count_shrinks_as_predicted(mlp, digits, k):
    res = svcca_compress(mlp, "tanh1", digits[0], k)
    assert res.params == res.original_params - 16 * 24 + k * (24 + 16)
    assert res.model.fc2.project.weight.shape == (k, 24)
    assert res.model.fc2.linear.weight.shape == (16, k)


def test_projection_is_the_least_squares_reconstruction_from_k_canonical_variates(mlp, digits):
    # the compressed layer sees x_hat = mu + R P (x - mu): the regression of x on its top-k
    # canonical variates over the fitting data (each neuron projected onto their span)
    x = torch.as_tensor(digits[0].x, dtype=torch.float32)
    acts = nc.capture(mlp, x, ["tanh1"])["tanh1"].astype(np.float64)
    res = svcca_compress(mlp, "tanh1", digits[0], 5)
    P = res.model.fc2.project.weight.detach().double().numpy()
    Z = (acts - acts.mean(0)) @ P.T  # canonical variates, (N, 5)
    np.testing.assert_allclose(Z.T @ Z / len(Z), np.eye(5), atol=1e-6)  # whitened
    xc = acts - acts.mean(0)
    coef, *_ = np.linalg.lstsq(Z, xc, rcond=None)
    x_hat = acts.mean(0) + Z @ coef
    W = mlp.fc2.weight.detach().double().numpy()
    b = mlp.fc2.bias.detach().double().numpy()
    with torch.no_grad():
        out = res.model.fc2(torch.as_tensor(acts, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(out, x_hat @ W.T + b, atol=2e-4)


def test_svcca_directions_beat_random_ones_at_few_dimensions(mlp, digits):
    train_data, test_data = digits
    svcca = svcca_compress(mlp, "tanh2", train_data, 3, eval_data=test_data)
    rand = svcca_compress(mlp, "tanh2", train_data, 3, eval_data=test_data, reference="random")
    assert svcca.accuracy > rand.accuracy
    assert svcca.correlations.shape == (3,) and np.all(np.diff(svcca.correlations) <= 1e-12)
    assert rand.reference == "random" and rand.correlations.size == 0


def test_reference_can_be_another_network(digits):
    torch.manual_seed(1)
    a, b = _cnn(), _cnn()
    res = svcca_compress(a, "pool", digits[0], 4, reference=(b, "pool"))
    assert res.reference == "model" and res.k == 4 and res.next_layer == "fc1"


def test_sweep_single_and_consecutive_rows(digits):
    torch.manual_seed(0)
    net = _cnn()
    train_data = (digits[0].x[:400], digits[0].y[:400])
    df = compression_sweep(
        net,
        ["pool", "relu2"],
        train_data,
        fractions=(0.25, 1.0),
        references=("logits", "random"),
    )
    assert set(df["mode"]) == {"single", "consecutive"}
    assert len(df) == 2 * 2 * 3  # references x fractions x (2 single + 1 consecutive)
    cons = df[df["mode"] == "consecutive"]
    assert set(cons["layer"]) == {"pool+relu2"}
    quarter = cons[cons["fraction"] == 0.25]
    assert (quarter["params"] < quarter["original_params"]).all()
    single = df[(df["mode"] == "single") & (df["fraction"] == 0.25)]
    assert list(single["k"]) == [2, 3, 2, 3]  # round(0.25 * 8), round(0.25 * 12)


def test_bad_input_is_explained(mlp, digits):
    d = digits[0]
    with pytest.raises(ValueError, match=r"layer 'tanh9' is not a module of the MLP"):
        svcca_compress(mlp, "tanh9", d, 2)
    with pytest.raises(ValueError, match=r"output of layer 'fc1' to enter an nn.Linear.*'tanh1'"):
        svcca_compress(mlp, "fc1", d, 2)
    with pytest.raises(ValueError, match=r"k must be an int in 1\.\.24 \(the layer has 24"):
        svcca_compress(mlp, "tanh1", d, 0)
    with pytest.raises(ValueError, match=r"k=24 exceeds the \d+ directions the SV step kept"):
        svcca_compress(mlp, "tanh1", d, 24, keep=0.5)
    with pytest.raises(ValueError, match=r"reference must be 'logits'.*got 'labels'"):
        svcca_compress(mlp, "tanh1", d, 2, reference="labels")
    with pytest.raises(ValueError, match=r"keep must be a fraction of variance in \(0, 1\]"):
        svcca_compress(mlp, "tanh1", d, 2, keep=0)
    with pytest.raises(TypeError, match=r"inputs have dtype torch.int64, expected a floating"):
        svcca_compress(mlp, "tanh1", (torch.zeros(10, 64, dtype=torch.long), d.y[:10]), 2)
    with pytest.raises(ValueError, match=r"fractions must be a non-empty list of values in"):
        compression_sweep(mlp, "tanh1", d, fractions=(0.0,))


def test_cli_compress_writes_a_report(runner, tmp_path):
    from nncompare.cli.main import cli

    res = runner.invoke(
        cli,
        ["compress", "nncompare.models:MLP(in_features=64, hidden=(24, 16), activation='tanh')",
         "--data", "digits", "--layers", "tanh1,tanh2", "--fractions", "0.25,1",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert "Compression by SVCCA projection" in html
    import pandas as pd

    df = pd.read_csv(tmp_path / "results.csv")
    assert set(df["mode"]) == {"single", "consecutive"} and set(df["reference"]) == {
        "logits",
        "random",
    }


def test_cli_compress_layer_without_linear_is_one_line(runner, tmp_path):
    from nncompare.cli.main import cli

    res = runner.invoke(
        cli,
        ["compress", "nncompare.models:MLP(in_features=64, hidden=(24,))", "--data", "digits",
         "--layers", "fc1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "compress: svcca_compress needs the output of layer 'fc1' to enter" in res.output
    assert len(res.output.strip().splitlines()) == 1  # one line, no traceback


def test_report_section_and_plot(mlp, digits, tmp_path):
    from nncompare.report._compression import write_compression_report

    df = compression_sweep(mlp, ["tanh1", "tanh2"], digits[0], fractions=(0.25, 1.0))
    files = write_compression_report(df, tmp_path / "alone")
    html = files.html.read_text()
    assert 'id="compression"' in html and "tanh1+tanh2" in html
    x = torch.as_tensor(digits[1].x[:100], dtype=torch.float32)
    cmp = nc.compare_models(mlp, mlp, x, layers_a=["tanh1"], layers_b=["tanh2"], measures=["cka"])
    files = nc.report.write_report(cmp, tmp_path / "full", compression=df)
    assert 'id="compression"' in files.html.read_text()
    assert (tmp_path / "full" / "compression.csv").is_file()
    with pytest.raises(ValueError, match=r"compression_curves expects a frame with columns"):
        nc.plot.compression_curves(df.drop(columns=["accuracy"]))
