"""The weight lens's applications: the factorized VGG, the CLI command, the report section."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nncompare.workbench.models import FactorizedVGG, FrozenDepthwise, factorized_vgg

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # random layers have no learned component: compare_weights says so (tested in
    # test_weights.py); here it is expected for conv1 and fc of the planted networks
    pytest.mark.filterwarnings("ignore:.*no learned component"),
]

SMALL_PLAN = (1, "M", 2, "M")


def orthonormal_filters(n: int = 9, k: int = 3, seed: int = 0) -> torch.Tensor:
    """``n`` orthonormal k x k filter images (rows of a random orthogonal matrix)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(k * k, k * k, generator=g))
    return q.T[:n].reshape(n, k, k).contiguous()


# --------------------------------------------------------------------------- structure


def test_factorized_vgg_block_layout_follows_appendix_b2():
    filters = orthonormal_filters()
    net = factorized_vgg(filters, width=4)
    assert isinstance(net, FactorizedVGG) and net.copies == 10
    names = [name for name, _ in net.named_children()]
    assert names[:5] == ["depthwise1", "relu1", "bn1", "pointwise1", "pool1"]
    assert names[-2:] == ["avgpool", "fc"]
    assert sum(isinstance(m, FrozenDepthwise) for m in net.modules()) == 8
    # channel widths w, 2w, 4w, 4w, 8w, 8w, 8w, 8w; pointwise is C_out x K*C_in, kernel 1
    widths = [net.get_submodule(f"pointwise{i}").out_channels for i in range(1, 9)]
    assert widths == [4, 8, 16, 16, 32, 32, 32, 32]
    assert tuple(net.pointwise1.weight.shape) == (4, 10 * 3, 1, 1)
    assert tuple(net.pointwise5.weight.shape) == (32, 10 * 16, 1, 1)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_depthwise_filters_are_the_top5_given_filters_and_their_negatives():
    filters = orthonormal_filters()
    net = factorized_vgg(filters, width=4)
    top5 = filters[:5]
    for i in range(1, 9):
        dw = net.get_submodule(f"depthwise{i}")
        torch.testing.assert_close(dw.filters, top5)
        bank = dw.weight.reshape(dw.in_channels, 10, 3, 3)
        for c in range(dw.in_channels):
            torch.testing.assert_close(bank[c, :5], top5)
            torch.testing.assert_close(bank[c, 5:], -top5)
    # channel c*K + j of the output is input channel c convolved with filter j
    dw = net.depthwise2
    x = torch.randn(1, dw.in_channels, 6, 6)
    y = dw(x)
    expected = F.conv2d(x[:, 3:4], (-top5[1]).reshape(1, 1, 3, 3), padding=1)
    torch.testing.assert_close(y[:, 3 * 10 + 6 : 3 * 10 + 7], expected)


def test_factorized_vgg_has_no_biases_frozen_filters_and_parameter_free_bn():
    net = factorized_vgg(orthonormal_filters(), width=4)
    trainable = [name for name, p in net.named_parameters() if p.requires_grad]
    assert trainable == [f"pointwise{i}.weight" for i in range(1, 9)] + ["fc.weight"]
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert module.bias is None
        if isinstance(module, nn.BatchNorm2d):
            assert not module.affine
    assert net.bn3.num_features == 10 * 8  # BatchNorm over the K * C_in filtered copies
    # the frozen filters travel with the state dict (a buffer, not a parameter)
    assert "depthwise1.filters" in net.state_dict()
    clone = factorized_vgg(orthonormal_filters(seed=1), width=4)
    clone.load_state_dict(net.state_dict())
    torch.testing.assert_close(clone.depthwise4.filters, net.depthwise4.filters)


def test_factorized_vgg_accepts_eigenfilter_results_and_per_block_mappings():
    class Result:  # what nc.weights.spatial_eigenfilters returns per layer
        def __init__(self, vectors: torch.Tensor) -> None:
            self.eigenvectors = vectors

    a, b = orthonormal_filters(seed=1), orthonormal_filters(seed=2)
    net = factorized_vgg(Result(a.numpy()), in_channels=1, width=2, plan=SMALL_PLAN)
    torch.testing.assert_close(net.depthwise2.filters, a[:5])
    per_block = factorized_vgg(
        {"conv1": Result(a), "conv2": Result(b)}, in_channels=1, width=2, plan=SMALL_PLAN
    )
    torch.testing.assert_close(per_block.depthwise1.filters, a[:5])
    torch.testing.assert_close(per_block.depthwise2.filters, b[:5])
    seq = factorized_vgg([a, b], in_channels=1, width=2, plan=SMALL_PLAN, n_filters=3)
    assert seq.copies == 6
    torch.testing.assert_close(seq.depthwise2.filters, b[:3])


@pytest.mark.parametrize(
    ("filters", "kwargs", "match"),
    [
        (torch.randn(9, 2, 2), {}, r"odd filter size k.*got k=2"),
        (torch.randn(9, 3), {}, r"shape \(rank, k, k\).*got shape \(9, 3\)"),
        (torch.randn(4, 3, 3), {}, r"top 5 filters but got only 4.*lower n_filters to 4"),
        (torch.full((9, 3, 3), float("nan")), {}, r"NaN or infinite"),
        ("gabor", {}, r"array of spatial filters of shape \(rank, k, k\).*got str"),
        ({"conv1": torch.randn(9, 3, 3)}, {}, r"mapping of 1 layers \(conv1\).*8 convolution"),
        (torch.randn(9, 3, 3), {"n_filters": 0}, r"n_filters must be a positive integer"),
    ],
)
def test_factorized_vgg_bad_filters_say_what_to_pass(filters, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factorized_vgg(filters, **kwargs)


# --------------------------------------------------------------------------- training


def test_factorized_vgg_trains_with_nc_training_and_the_loss_falls():
    from nncompare.data import load_digits
    from nncompare.training import train

    data = load_digits("train")
    torch.manual_seed(0)
    net = factorized_vgg(orthonormal_filters(), in_channels=1, width=8, plan=SMALL_PLAN)
    frozen = net.depthwise2.weight.clone()
    result = train(net, data, epochs=3, lr=0.05, seed=0, batch_size=64)
    losses = [epoch.train_loss for epoch in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert result.final_accuracy > 0.5
    # the depthwise filters did not move
    torch.testing.assert_close(net.depthwise2.weight, frozen, rtol=0, atol=0)
    assert np.isfinite(losses).all()


def test_factorized_vgg_takes_the_eigenfilters_of_a_trained_network_per_block():
    from nncompare.weights import spatial_eigenfilters
    from nncompare.workbench.models import vgg11_simplified

    torch.manual_seed(0)
    eigenfilters = spatial_eigenfilters(vgg11_simplified(width=2))  # one entry per conv
    net = factorized_vgg(eigenfilters, width=2)
    for i, result in enumerate(eigenfilters.values(), start=1):
        expected = torch.as_tensor(result.eigenvectors[:5], dtype=torch.float32)
        torch.testing.assert_close(net.get_submodule(f"depthwise{i}").filters, expected)


def test_compare_weights_undoes_a_channel_permutation_of_a_factorized_block():
    """B is A with the channels between block 1 and block 2 permuted (pointwise1's rows,
    bn2's statistics and pointwise2's K-column groups permuted alike): the same function.
    Aligned at depthwise2's input, B's pointwise2 weights map back onto A's, each of the
    K filter copies of a channel moving with it (channel-major layout c * K + j)."""
    from nncompare.weights import compare_weights
    from nncompare.weights.experiments import factorized_align_at

    torch.manual_seed(0)
    plan = (6, "M", 4)
    a = factorized_vgg(orthonormal_filters(), in_channels=1, width=1, plan=plan).eval()
    K = a.copies
    with torch.no_grad():  # a planted learned direction in pointwise2 (C_out 4, D 60)
        direction = torch.randn(K * 6)
        a.pointwise2.weight.add_((0.6 * torch.ones(4, 1) * direction[None, :])[:, :, None, None])
        a.bn2.running_mean.uniform_(0.0, 1.0)
        a.bn2.running_var.uniform_(0.5, 2.0)
    b = factorized_vgg(orthonormal_filters(), in_channels=1, width=1, plan=plan).eval()
    b.load_state_dict(a.state_dict())
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    cols = (perm[:, None] * K + torch.arange(K)[None, :]).reshape(-1)
    with torch.no_grad():
        b.pointwise1.weight.copy_(a.pointwise1.weight[perm])
        b.bn2.running_mean.copy_(a.bn2.running_mean[cols])
        b.bn2.running_var.copy_(a.bn2.running_var[cols])
        b.pointwise2.weight.copy_(a.pointwise2.weight[:, cols])
    x = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), atol=1e-5, rtol=1e-5)
    align_at = {"pointwise2": factorized_align_at(a)["pointwise2"]}  # = "depthwise2"
    df = compare_weights(a, b, x, ["pointwise2"], align_at=align_at)
    assert df["cosine"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert df["c_in_a"].iloc[0] == 6  # aligned on the 6 block-input channels, not 60


# --------------------------------------------------------------------------- summary


def test_factorized_align_at_pairs_each_pointwise_conv_with_its_depthwise_input():
    from nncompare.weights.experiments import factorized_align_at

    net = factorized_vgg(orthonormal_filters(), in_channels=1, width=2, plan=SMALL_PLAN)
    assert factorized_align_at(net) == {"pointwise1": "depthwise1", "pointwise2": "depthwise2"}
    assert factorized_align_at(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())) == {}


def planted_cnn(seed: int = 0) -> nn.Module:
    """A SmallCNN whose conv2 weights hold a planted learned direction (a rank-one spike
    far above the noise edge of eq. 3), so that S and r_eff are defined for it."""
    from nncompare.workbench.models import SmallCNN

    torch.manual_seed(seed)
    net = SmallCNN(widths=(6, 8)).eval()
    w = net.conv2.weight  # (8, 6, 3, 3): D = 54, C_out = 8
    var = 1.0 / (3 * 54)  # PyTorch's default init variance
    g = torch.Generator().manual_seed(100 + seed)
    b = torch.randn(54, generator=g)
    b = b / b.norm()
    a = torch.full((8,), (50.0 * var) ** 0.5)
    with torch.no_grad():
        w.add_((a[:, None] * b[None, :]).reshape(w.shape))
    return net


def test_weights_summary_of_one_and_two_networks():
    from nncompare.weights.experiments import weights_summary

    net = planted_cnn()
    one = weights_summary(net, names=("A", "B"))
    assert one.names == ("A",) and one.comparison is None
    assert list(one.eigenfilters["A"]) == ["conv1", "conv2"]
    spectra = one.spectra["A"].set_index("layer")
    assert list(spectra.index) == ["conv1", "conv2", "fc"]
    # the planted spike is the one learned eigenvalue of conv2: r_eff = 1
    assert spectra.loc["conv2", "n_learned"] == 1
    assert spectra.loc["conv2", "r_eff"] == pytest.approx(1.0)
    assert spectra.loc["conv2", "gamma"] == pytest.approx(54 / 8)

    x = torch.rand(64, 1, 8, 8)
    copy = planted_cnn()
    two = weights_summary(net, copy, x, names=("A", "A"), k=8)
    assert two.names == ("A", "A (B)")  # equal labels are told apart
    row = two.comparison.set_index("layer").loc["conv2"]
    assert row["cosine"] == pytest.approx(1.0, abs=1e-6)  # the same weights, aligned
    assert np.isfinite(row["S"])
    panel = two.eigenvector_similarity["conv2"]
    assert panel.matrix.shape == (8, 8)
    assert panel.matrix[0, 0] == pytest.approx(1.0, abs=1e-6)  # the spike, found in both
    with pytest.raises(ValueError, match=r"needs data: inputs whose activations align"):
        weights_summary(net, copy)


def test_report_weights_section_renders_every_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from nncompare.report import example_frame, weights_figures, write_report
    from nncompare.weights.experiments import weights_summary

    summary = weights_summary(planted_cnn(0), planted_cnn(1), torch.rand(48, 1, 8, 8), k=8)
    assert sorted(weights_figures(summary)) == [
        "weights_eigenfilters_a",
        "weights_eigenfilters_b",
        "weights_eigenvector_similarity",
        "weights_overlap",
        "weights_similarity_by_depth",
        "weights_spectra",
    ]
    files = write_report(example_frame(), tmp_path / "rep", weights=summary, formats="png")
    html = files.html.read_text(encoding="utf-8")
    assert 'id="weights"' in html and 'id="heatmaps"' in html
    assert "Figure not available" not in html
    assert (tmp_path / "rep" / "figures" / "weights_similarity_by_depth.png").is_file()
    import pandas as pd

    rows = pd.read_csv(tmp_path / "rep" / "weights.csv")
    assert list(rows["layer"]) == ["conv1", "conv2", "fc"]
    doc = __import__("json").loads((tmp_path / "rep" / "weights.json").read_text())
    assert doc["format"] == "nncompare.weights"
    assert set(doc["eigenvector_similarity"]) >= {"conv2"}


def test_report_weights_section_refuses_other_objects():
    from nncompare.report._weights import weights_section

    with pytest.raises(TypeError, match=r"expects the WeightsSummary.*got DataFrame"):
        import pandas as pd

        weights_section(pd.DataFrame(), None)


# --------------------------------------------------------------------------- CLI

FACTORY = "nncompare.models:SmallCNN(widths=(6, 8))"


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights_cli")
    torch.save(planted_cnn(0).state_dict(), d / "a.pt")
    torch.save(planted_cnn(1).state_dict(), d / "b.pt")
    rng = np.random.default_rng(0)
    np.savez(d / "x.npz", x=rng.random((40, 1, 8, 8)).astype(np.float32))
    np.savez(d / "wide.npz", x=rng.random((40, 3, 8, 8)).astype(np.float32))
    return d


def _weights_args(d, *extra):
    return ["weights", FACTORY, FACTORY, "--weights-a", str(d / "a.pt"),
            "--weights-b", str(d / "b.pt"), *extra]  # fmt: skip


def test_cli_weights_compares_two_models_and_writes_the_report(runner, cli_files):
    from nncompare.cli.main import cli

    out = cli_files / "two"
    res = runner.invoke(
        cli, _weights_args(cli_files, "--data", str(cli_files / "x.npz"), "--out", str(out))
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"compared 3 weight layers: S from .* \(highest at conv2\)", res.output)
    assert "note: conv1: no learned component" in res.output
    import pandas as pd

    rows = pd.read_csv(out / "results.csv")
    assert list(rows["layer"]) == ["conv1", "conv2", "fc"]
    assert rows.set_index("layer")["n_samples"]["fc"] == 40
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="weights"' in html and "Aligned channel weights" in html
    doc = json.loads((out / "results.json").read_text())
    assert doc["provenance"]["n_samples"] == 40 and doc["names"] == ["a", "b"]


def test_cli_weights_of_one_model_needs_no_data(runner, cli_files):
    from nncompare.cli.main import cli

    out = cli_files / "one"
    res = runner.invoke(
        cli, ["weights", FACTORY, "--weights-a", str(cli_files / "a.pt"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "a: 2 k x k conv layers, 3 weight layers with spectra" in res.output
    import pandas as pd

    rows = pd.read_csv(out / "results.csv")
    assert rows.set_index("layer")["n_learned"]["conv2"] == 1
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Spatial eigenfilters" in html and "Aligned channel weights" not in html


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--out", "{d}/e1"], r"Invalid value for --data: comparing two networks' channel "
         r"weights needs inputs"),
        (["--data", "{d}/x.npz", "--layers", "conv3", "--out", "{d}/e2"],
         r"--layers: 'conv3' is not a Conv2d or Linear layer of MODEL_A: did you mean "
         r"'conv2'\? its weight layers are conv1, conv2, fc"),
        (["--data", "{d}/x.npz", "--layers", "conv1,,fc", "--out", "{d}/e3"],
         r"--layers: expected weight-layer names separated by commas"),
        (["--data", "{d}/wide.npz", "--out", "{d}/e4"], r"cannot use the inputs in --data "
         r"wide.npz: images of shape \(40, 3, 8, 8\) have 8 channels read as \(N, H, W, C\) "
         r"and 3 read as \(N, C, H, W\), but the model expects 1 in either layout"),
        (["--data", "{d}/x.npz", "--top", "0", "--out", "{d}/e5"],
         r"Invalid value for '--top': 0 is not in the range x>=1"),
    ],
)  # fmt: skip
def test_cli_weights_errors_are_one_line(runner, cli_files, args, match):
    from cli_util import error_line
    from nncompare.cli.main import cli

    extra = [a.format(d=cli_files) for a in args]
    line = error_line(runner.invoke(cli, _weights_args(cli_files, *extra)))
    assert re.search(match, line), line


def test_cli_weights_model_errors_are_one_line(runner, cli_files):
    from cli_util import error_line
    from nncompare.cli.main import cli

    d = cli_files
    line = error_line(runner.invoke(cli, ["weights", FACTORY, "--weights-b", str(d / "b.pt")]))
    assert re.search(r"--weights-b describes MODEL_B, but only MODEL_A was given", line), line
    line = error_line(runner.invoke(cli, ["weights", "nncompare.models:GlobalAvgPool"]))
    assert re.search(r"MODEL_A \(GlobalAvgPool\) has no Conv2d or Linear layer", line), line
    deeper = "nncompare.models:SmallCNN(widths=(6, 8, 8))"
    line = error_line(
        runner.invoke(
            cli,
            [
                "weights",
                FACTORY,
                deeper,
                "--weights-a",
                str(d / "a.pt"),
                "--data",
                str(d / "x.npz"),
                "--out",
                str(d / "e6"),
            ],
        )
    )
    assert re.search(
        r"--layers: the two models' weight layers differ \(3 in MODEL_A, 4 in MODEL_B; only "
        r"in A: none; only in B: conv3\): pass --layers",
        line,
    ), line


def test_cli_weights_loads_factorized_vggs_from_state_dicts(runner, tmp_path):
    """factorized_vgg() without filters builds placeholders that the state dict replaces,
    so factorized networks load as factories on the command line; their pointwise convs
    are compared, aligned at the depthwise inputs."""
    from nncompare.cli.main import cli

    plan = (2, "M", 2)
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = factorized_vgg(orthonormal_filters(), in_channels=1, width=2, plan=plan)
        torch.save(net.state_dict(), tmp_path / f"f{seed}.pt")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((24, 1, 8, 8), np.float32))
    spec = f"nncompare.models:factorized_vgg(in_channels=1, width=2, plan={plan!r})"
    out = tmp_path / "out"
    res = runner.invoke(
        cli,
        ["weights", spec, spec, "--weights-a", str(tmp_path / "f0.pt"), "--weights-b",
         str(tmp_path / "f1.pt"), "--data", str(tmp_path / "x.npz"), "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["options"]["align_at"] == {"pointwise1": "depthwise1", "pointwise2": "depthwise2"}
    rows = {r["layer"]: r for r in doc["comparison"]}
    assert rows["pointwise2"]["c_in_a"] == 4  # the block input, not the 40 filtered copies


# --------------------------------------------------------------------------- demo


def test_demo_report_has_a_weights_section(tmp_path):
    pytest.importorskip("sklearn")
    from nncompare.demo import run_demo

    lines: list[str] = []
    result = run_demo(tmp_path / "demo", epochs=2, stitching=False, log=lines.append)
    assert any(line.startswith("compared the weights of 3 layers") for line in lines), lines
    html = result.report.html.read_text(encoding="utf-8")
    assert 'id="weights"' in html
    assert result.weights.comparison is not None
    assert list(result.weights.comparison["layer"]) == ["conv1", "conv2", "fc"]
    assert (tmp_path / "demo" / "weights.csv").is_file()


def test_weights_summary_reads_the_data_once_per_network():
    """The frame and the eigenvector panels come from one set of aligned covariances: one
    forward pass per network over the data (it used to be two)."""
    from nncompare.weights.experiments import weights_summary

    net, copy = planted_cnn(), planted_cnn()
    calls = {"a": 0, "b": 0}
    hooks = [
        m.register_forward_pre_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
        for k, m in (("a", net), ("b", copy))
    ]
    try:
        weights_summary(net, copy, torch.rand(64, 1, 8, 8), k=8, batch_size=64)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"a": 1, "b": 1}
