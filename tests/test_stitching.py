"""Model stitching (issue #9): true cuts, direct matching against independent oracles,
task-loss matching, evaluation, bad input, and source models left untouched.

Oracles: ``torch.linalg.lstsq`` on the materialised (N·H·W, C) matrices (least squares,
Csiszárik et al. 2021 eq. 2), ``scipy.linalg.orthogonal_procrustes`` (Procrustes), the
reduced-rank formula M_LS V_k V_kᵀ with V_k from an SVD of A_c M_LS computed directly
(Izenman 1975; the paper's Sec. 4.2), and scikit-learn's ``Lasso`` on the materialised data.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import nncompare as nc
from nncompare.errors import LayerNotFoundError
from nncompare.stitching import InvalidCutError, Stitched, StitchResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyNet(nn.Module):
    """conv1 -> bn1 -> relu -> residual block -> conv2 (stride 2) -> pool -> fc."""

    def __init__(self, width: int = 6, seed: int = 0, classes: int = 5) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.block = _Residual(width)
        self.conv2 = nn.Conv2d(width, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.bn1.running_mean.copy_(torch.randn(width, generator=g) * 0.1)
            self.bn1.running_var.copy_(torch.rand(width, generator=g) + 0.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.block(x)
        x = self.relu2(self.conv2(x))
        return self.fc(self.flat(self.pool(x)))


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.ReLU()
        self.conv_b = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv_b(self.act(self.conv_a(x))) + x)


def _data(n: int = 96, seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 5, (n,), generator=g)


def _rows(a: torch.Tensor) -> np.ndarray:
    return a.movedim(1, -1).reshape(-1, a.shape[1]).double().numpy()


def _materialised(s: Stitched, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        return _rows(s.resize_a(s.front_a(x))), _rows(s.front_b(x))


def _lstsq(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[A 1] W = B by torch.linalg.lstsq (float64): (M, bias)."""
    A1 = torch.from_numpy(np.hstack([A, np.ones((len(A), 1))]))
    W = torch.linalg.lstsq(A1, torch.from_numpy(B), driver="gelsd").solution.numpy()
    return W[:-1], W[-1]


def _snapshot(model: nn.Module) -> tuple[dict, dict, dict]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    modes = {k: m.training for k, m in model.named_modules()}
    return state, grads, modes


# --------------------------------------------------------------------------- direct matching


def test_ls_from_streamed_moments_equals_lstsq_on_materialised_positions():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, y = _data(96)
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.fit(s, (x, y), "ls", batch_size=20)  # 5 batches, the last one short
    A, B = _materialised(s, x)
    M, bias = _lstsq(A, B)
    assert r.n_samples == 96 and r.n_positions == 96 * 8 * 8 == len(A)
    np.testing.assert_allclose(r.matrix, M, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(r.bias, bias, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(s.matrix, r.matrix, rtol=1e-6, atol=1e-6)  # float32 layer
    resid = A @ M + bias - B
    assert r.fit_r2 == pytest.approx(1 - (resid**2).sum() / ((B - B.mean(0)) ** 2).sum(), abs=1e-9)


def test_ls_vectors_with_different_widths():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(80)
    s = nc.stitch(a, "pool", b, "flat", resize=None)
    with pytest.raises(ValueError, match=r"Expected activations of the same kind.*\(N, 8, 1, 1\)"):
        nc.stitching.fit(s, x)
    s = nc.stitch(a, "flat", b, "flat")
    r = nc.stitching.fit(s, x)
    assert isinstance(s.stitch_layer, nn.Linear)
    A, B = _materialised(s, x)
    M, bias = _lstsq(A, B)
    np.testing.assert_allclose(r.matrix, M, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(r.bias, bias, rtol=1e-6, atol=1e-8)


def test_procrustes_equals_scipy_orthogonal_procrustes():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=3)
    x, _ = _data(64)
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.fit(s, x, "procrustes", batch_size=16)
    A, B = _materialised(s, x)
    R, _ = scipy.linalg.orthogonal_procrustes(A - A.mean(0), B - B.mean(0))
    np.testing.assert_allclose(r.matrix, R, atol=1e-9)
    np.testing.assert_allclose(r.matrix @ r.matrix.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(r.bias, B.mean(0) - A.mean(0) @ R, atol=1e-9)


def test_rrr_equals_reduced_rank_closed_form():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(64)
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.fit(s, x, "rrr", rank=3, batch_size=24)
    A, B = _materialised(s, x)
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    M_ls = np.linalg.lstsq(Ac, Bc, rcond=None)[0]
    _, _, Vt = np.linalg.svd(Ac @ M_ls, full_matrices=False)
    Vk = Vt[:3].T
    M = M_ls @ Vk @ Vk.T
    np.testing.assert_allclose(r.matrix, M, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(r.bias, B.mean(0) - A.mean(0) @ M, rtol=1e-6, atol=1e-9)
    assert np.linalg.matrix_rank(r.matrix, tol=1e-8) == 3 and r.rank == 3
    # a rank-3 bottleneck layer holds the same matrix, as two factors
    low = nc.stitch(a, "block", b, "block", kind="lowrank", rank=3)
    r_low = nc.stitching.fit(low, x, "rrr")
    assert isinstance(low.stitch_layer, nn.Sequential)
    np.testing.assert_allclose(r_low.matrix, M, rtol=1e-4, atol=1e-6)


def test_lasso_equals_sklearn_lasso_on_materialised_data():
    Lasso = pytest.importorskip("sklearn.linear_model").Lasso
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(48)
    s = nc.stitch(a, "block", b, "block")
    alpha = 0.05
    r = nc.stitching.fit(s, x, "lasso", alpha=alpha, batch_size=16, tol=1e-12, max_iter=100000)
    A, B = _materialised(s, x)
    ref = Lasso(alpha=alpha, fit_intercept=True, tol=1e-12, max_iter=100000).fit(A, B)
    np.testing.assert_allclose(r.matrix, ref.coef_.T, atol=1e-6)
    np.testing.assert_allclose(r.bias, ref.intercept_, atol=1e-5)
    assert 0 < np.mean(r.matrix == 0) < 1  # the penalty bites, but not everything
    assert r.options["alpha"] == alpha


def test_fit_accepts_dataset_and_dataloader_alike():
    from torch.utils.data import DataLoader, TensorDataset

    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, y = _data(64)
    results = []
    for data in ((x, y), TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=10)):
        s = nc.stitch(a, "block", b, "block")
        results.append(nc.stitching.fit(s, data).matrix)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[0], results[2], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- the cut


def test_self_stitch_at_identity_reproduces_outputs_exactly():
    net = TinyNet(6, seed=4)
    x, _ = _data(32)
    s = nc.stitch(net, "block", net, "block")
    out = s(x)
    assert s.method == "identity"
    with torch.no_grad():
        assert torch.equal(out, net(x))


def test_cifar_resnet_block_outputs_are_valid_cuts_and_inside_a_block_is_refused():
    net = nc.models.cifar_resnet(20)
    net.eval()
    x = torch.randn(4, 3, 32, 32)
    cuts = {c.name: c for c in nc.stitching.valid_cuts(net, x[:2])}
    for name, shape in (("layer1", (2, 16, 32, 32)), ("layer2", (2, 32, 16, 16))):
        assert cuts[name].shape == shape
    assert {"layer3", "layer1.0", "layer2.2", "avgpool", "linear"} <= set(cuts)
    assert not {"layer1.0.conv1", "layer1.0.bn2", "layer2.1.relu1"} & set(cuts)
    for layer in ("layer1", "layer2.1", "layer3"):
        s = nc.stitch(net, layer, net, layer)
        with torch.no_grad():
            assert torch.equal(s(x), net(x)), layer
    with pytest.raises(
        InvalidCutError,
        match=r"'layer1\.0\.conv1': it is not a true cut.*the output of 'relu' is read by "
        r"'layer1\.0\.shortcut'.*Valid cuts: 'conv1', 'bn1', 'relu', 'layer1'",
    ):
        nc.stitch(net, "layer1", net, "layer1.0.conv1")


def test_changing_b_before_the_cut_does_not_change_the_stitched_output():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=2)
    x, _ = _data(16)
    b_front, b_back = copy.deepcopy(b), copy.deepcopy(b)
    with torch.no_grad():
        b_front.conv1.weight.mul_(-3.0)  # before the cut
        b_front.block.conv_a.bias.add_(1.0)
        b_back.conv2.weight.mul_(-3.0)  # after the cut
    M, bias = np.random.default_rng(0).normal(size=(6, 6)), np.zeros(6)
    outs = []
    for model in (b, b_front, b_back):
        s = nc.stitch(a, "block", model, "block", example_input=x[:2])
        s.set_matrix(M, bias)
        with torch.no_grad():
            outs.append(s(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])  # the control: B's back is used


def test_gradients_reach_only_the_stitching_layer():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(16)
    for kind, rank in (("linear", None), ("lowrank", 2)):
        s = nc.stitch(a, "block", b, "block", kind=kind, rank=rank, example_input=x[:2])
        trainable = [n for n, p in s.named_parameters() if p.requires_grad]
        assert trainable and all(n.startswith("stitch_layer.") for n in trainable)
        s(x).square().sum().backward()
        for name, p in s.named_parameters():
            if name.startswith("stitch_layer."):
                assert p.grad is not None and p.grad.abs().sum() > 0, name
            else:
                assert p.grad is None, name


def test_source_models_unchanged_by_stitch_fit_train_evaluate():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=2)
    a.train()
    a.block.eval()  # mixed modes must come back as they were
    b.fc.weight.requires_grad_(False)
    before = [_snapshot(a), _snapshot(b)]
    rng = torch.random.get_rng_state()
    x, y = _data(64)
    s = nc.stitch(a, "block", b, "block")
    nc.stitching.fit(s, (x, y))
    nc.stitching.train(s, (x, y), epochs=1, batch_size=32, progress=False, init="random")
    nc.stitching.evaluate(s, (x, y))
    s.train()
    s(x).sum().backward()
    after = [_snapshot(a), _snapshot(b)]
    for (sa, ga, ma), (sb, gb, mb) in zip(before, after, strict=True):
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert ga == gb and ma == mb
    assert all(p.grad is None for p in (*a.parameters(), *b.parameters()))
    assert torch.equal(rng, torch.random.get_rng_state())  # the caller's random state too


# --------------------------------------------------------------------------- train / evaluate


def test_evaluate_self_stitch_against_direct_computation():
    net = TinyNet(6, seed=4)
    x, y = _data(64)
    s = nc.stitch(net, "block", net, "block")
    r = nc.stitching.evaluate(s, (x, y), batch_size=20)
    with torch.no_grad():
        logits = net(x)
    acc = float((logits.argmax(1) == y).float().mean())
    p = torch.softmax(logits.double(), 1)
    entropy = float(-(p * torch.log_softmax(logits.double(), 1)).sum(1).mean())
    assert r.accuracy == pytest.approx(acc) and r.accuracy_b == pytest.approx(acc)
    assert r.relative_accuracy == 1.0 and r.agreement == 1.0
    assert r.cross_entropy == pytest.approx(entropy, rel=1e-6)  # CE(p, p) is p's entropy
    row = r.to_frame()
    assert len(row) == 1 and row.loc[0, "method"] == "identity"
    assert row.loc[0, "relative_accuracy"] == 1.0


@pytest.mark.filterwarnings("ignore::nncompare.errors.RankDeficiencyWarning")  # lr_r2: 6 of 8
def test_task_loss_training_lowers_cross_entropy_from_random_init():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, y = _data(128)
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.train(
        s, (x, y), init="random", epochs=4, lr=2e-2, batch_size=32, seed=1,
        monitor=["cka", "lr_r2"], eval_data=(x, y), progress=False,
    )  # fmt: skip
    assert isinstance(r, StitchResult) and r.method == "task"
    assert [h["step"] for h in r.history] == [0, 4, 8, 12, 16]
    assert r.history[0]["loss"] is None and all(h["loss"] > 0 for h in r.history[1:])
    assert r.history[-1]["cross_entropy"] < 0.7 * r.history[0]["cross_entropy"]
    assert r.cross_entropy == pytest.approx(r.history[-1]["cross_entropy"])
    assert {"cka", "lr_r2"} <= set(r.history_frame().columns)
    assert r.options["init"] == "random" and r.options["steps"] == 16


def test_ls_init_starts_training_at_the_ls_fit():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, y = _data(64)
    s_fit = nc.stitch(a, "block", b, "block")
    ls = nc.stitching.fit(s_fit, x, batch_size=128)
    ev_ls = nc.stitching.evaluate(s_fit, (x, y))
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.train(s, (x, y), epochs=1, lr=1e-9, eval_data=(x, y), progress=False)
    assert r.history[0]["cross_entropy"] == pytest.approx(ev_ls.cross_entropy, rel=1e-5)
    np.testing.assert_allclose(r.matrix, ls.matrix, atol=1e-5)


def test_cka_penalty_lowers_cka_of_self_stitching():
    net = TinyNet(6, seed=4)
    x, y = _data(64)
    s = nc.stitch(net, "block", net, "block")
    r = nc.stitching.train(
        s, (x, y), init="identity", epochs=6, lr=5e-2, cka_penalty=5.0, batch_size=32,
        monitor=["cka"], progress=False,
    )  # fmt: skip
    assert r.history[0]["cka"] == pytest.approx(1.0, abs=1e-9)
    assert r.history[-1]["cka"] < 0.95


# --------------------------------------------------------------------------- bad input


def test_different_spatial_sizes_need_resize():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=2)
    x, _ = _data(32)
    with pytest.raises(
        ValueError,
        match=r"Expected equal spatial sizes.*\(N, 6, 8, 8\) but .* takes \(N, 8, 4, 4\)"
        r".*resize='interpolate'",
    ):
        nc.stitch(a, "block", b, "conv2", example_input=x[:2])
    for resize in ("pool", "interpolate"):
        s = nc.stitch(a, "block", b, "conv2", resize=resize)
        r = nc.stitching.fit(s, x)
        assert r.matrix.shape == (6, 8) and r.resize == resize
        assert r.to_row()["resize"] == resize
    with pytest.raises(ValueError, match=r"resize='pool' can only shrink"):
        nc.stitch(b, "conv2", a, "block", resize="pool", example_input=x[:2])


def test_unknown_layer():
    a = TinyNet()
    with pytest.raises(
        LayerNotFoundError, match=r"No layer named 'blok' in model_a\. Did you mean 'block'"
    ):
        nc.stitch(a, "blok", a, "block")
    with pytest.raises(LayerNotFoundError, match=r"No layer named 'conv3' in model_b"):
        nc.stitch(a, "block", a, "conv3")


def test_cut_crossed_by_a_skip_connection_is_refused_with_the_crossing_layers():
    a = TinyNet()
    with pytest.raises(
        InvalidCutError,
        match=r"Cannot cut model_b at 'block\.conv_a': it is not a true cut.*skip connection "
        r"crosses the cut\): the output of 'relu' is read by 'add in block'.*Valid cuts: "
        r"'conv1', 'bn1', 'relu', 'block', 'block\.out', 'conv2'",
    ):
        nc.stitch(a, "block", a, "block.conv_a")
    names = [c.name for c in nc.stitching.valid_cuts(a)]
    assert "block.conv_a" not in names and "block.act" not in names and "block" in names


def test_labels_missing_for_hard_target():
    a = TinyNet()
    x, _ = _data(16)
    s = nc.stitch(a, "block", a, "block")
    with pytest.raises(
        ValueError, match=r"target='hard' trains on the labels, but the data has none"
    ):
        nc.stitching.train(s, x, target="hard", progress=False)


def test_rank_larger_than_the_widths():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(16)
    with pytest.raises(
        ValueError, match=r"Expected rank <= min\(C_a, C_b\) = 6 .*C_a = 6, C_b = 8.*rank=7"
    ):
        nc.stitch(a, "block", b, "block", kind="lowrank", rank=7, example_input=x[:2])
    s = nc.stitch(a, "block", b, "block")
    with pytest.raises(ValueError, match=r"Expected rank <= min\(C_a, C_b\) = 6 .*got rank=9"):
        nc.stitching.fit(s, x, "rrr", rank=9)
    with pytest.raises(ValueError, match=r"kind='lowrank' needs rank="):
        nc.stitch(a, "block", b, "block", kind="lowrank")


def test_procrustes_on_unequal_widths():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(16)
    s = nc.stitch(a, "block", b, "block")
    with pytest.raises(
        ValueError, match=r"procrustes.*needs equal widths.*C_a = 6 and C_b = 8.*method='ls'"
    ):
        nc.stitching.fit(s, x, "procrustes")


def test_lasso_needs_alpha_and_fit_needs_a_stitched_model():
    a = TinyNet()
    x, _ = _data(16)
    s = nc.stitch(a, "block", a, "block")
    with pytest.raises(ValueError, match=r"method='lasso' needs a finite alpha > 0.*alpha=None"):
        nc.stitching.fit(s, x, "lasso")
    with pytest.raises(TypeError, match=r"Expected a Stitched model .* got TinyNet"):
        nc.stitching.fit(a, x)
    with pytest.raises(ValueError, match=r"Expected method to be one of .*got 'pca'"):
        nc.stitching.fit(s, x, "pca")


def test_untraceable_model_is_refused_naming_the_failure():
    class Branchy(TinyNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:
                return super().forward(x)
            return super().forward(-x)

    net = Branchy()
    with pytest.raises(
        InvalidCutError,
        match=r"tracing its forward with torch\.fx, and the trace of its own forward failed: "
        r"TraceError: symbolically traced variables cannot be used as inputs to control flow",
    ):
        nc.stitch(net, "block", net, "block")


def test_hard_target_and_l1_penalty():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=2)
    x, y = _data(64)
    sizes = {}
    for l1 in (0.0, 20.0):
        s = nc.stitch(a, "block", b, "block")
        r = nc.stitching.train(
            s, (x, y), target="hard", init="identity", epochs=10, lr=5e-2, l1=l1,
            batch_size=32, progress=False,
        )  # fmt: skip
        assert r.options["target"] == "hard" and r.n_samples == 64
        assert all(0 <= h["accuracy"] <= 1 for h in r.history[1:])
        sizes[l1] = np.abs(r.matrix).mean()
    assert sizes[20.0] < 0.5 * sizes[0.0]


def test_stitched_train_mode_touches_only_the_stitching_layer():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(16)
    s = nc.stitch(a, "block", b, "block", example_input=x[:2]).train()
    assert s.stitch_layer.training
    assert not any(m.training for part in (s.front_a, s.front_b, s.back_b) for m in part.modules())
    running = s.front_a.bn1.running_mean.clone()
    s(x)
    assert torch.equal(running, s.front_a.bn1.running_mean)  # eval-mode BatchNorm


def test_monitor_names_must_be_measures():
    a = TinyNet()
    x, _ = _data(16)
    s = nc.stitch(a, "block", a, "block")
    with pytest.raises(ValueError, match=r"unknown measure 'ckaa'\. Did you mean 'cka'"):
        nc.stitching.train(s, x, monitor=["ckaa"], progress=False)


def test_train_refuses_one_shot_iterators_and_lowrank_fit_ranks():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, _ = _data(32)
    s = nc.stitch(a, "block", b, "block")
    with pytest.raises(TypeError, match=r"iterated several times.*one-shot iterator \(generator\)"):
        nc.stitching.train(s, (xb for xb in x.split(8)), progress=False)
    assert nc.stitching.fit(s, (xb for xb in x.split(8))).n_samples == 32  # one pass: fine
    low = nc.stitch(a, "block", b, "block", kind="lowrank", rank=2)
    with pytest.raises(ValueError, match=r"Expected rank <= 2, the bottleneck width.*rank=3"):
        nc.stitching.fit(low, x, "rrr", rank=3)
    with pytest.raises(ValueError, match=r"rank-2 bottleneck.*method='ls' gives a full-rank one"):
        nc.stitching.fit(low, x, "ls")


def test_pretrained_resnet20_into_resnet32_at_layer3(shared_dir):
    """Real models: LS direct matching of ResNet-20's layer3 into ResNet-32's recovers B's
    accuracy on exact CIFAR-10 test images; the untransformed stitch (identity) does not.
    Expected values measured with benchmarks/stitching_resnet.py (README table)."""
    from nncompare.models import cifar_preprocess, cifar_resnet

    folder, cifar = (
        shared_dir / "data" / "akamaster_resnet_cifar10",
        shared_dir / "data" / "cifar10",
    )
    if not (folder.is_dir() and (cifar / "cifar10_test_exact1017.npz").is_file()):
        pytest.skip("pretrained CIFAR ResNets or CIFAR-10 not in the shared folder")
    a = cifar_resnet(20, next(folder.glob("resnet20-*.th"))).eval()
    b = cifar_resnet(32, next(folder.glob("resnet32-*.th"))).eval()
    with np.load(cifar / "cifar10_train_exact1017.npz") as f:
        train = cifar_preprocess(f["x"][:128]), torch.from_numpy(f["y"][:128])
    with np.load(cifar / "cifar10_test_exact1017.npz") as f:
        test = cifar_preprocess(f["x"][:128]), torch.from_numpy(f["y"][:128])
    s = nc.stitch(a, "layer3", b, "layer3")
    baseline = nc.stitching.evaluate(s, test)
    nc.stitching.fit(s, train)
    ls = nc.stitching.evaluate(s, test)
    assert baseline.method == "identity" and baseline.relative_accuracy < 0.5
    assert ls.accuracy_b > 0.85  # ResNet-32's own accuracy on these images
    assert ls.relative_accuracy > 0.9 and ls.cross_entropy < 0.6 * baseline.cross_entropy


def test_train_init_none_keeps_the_current_layer():
    a, b = TinyNet(6, seed=1), TinyNet(8, seed=2)
    x, y = _data(32)
    s = nc.stitch(a, "block", b, "block")
    ls = nc.stitching.fit(s, x)
    r = nc.stitching.train(s, (x, y), init=None, epochs=1, lr=1e-9, progress=False)
    np.testing.assert_allclose(r.matrix, ls.matrix, atol=1e-5)
    assert r.options["init"] == "kept (ls)"


def test_parameters_read_on_both_sides_of_the_cut_do_not_break_it():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([1.5, -0.5, 2.0]))
            self.mid = nn.Linear(3, 3)
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.mid(x * self.scale)  # self.scale before the cut ...
            return self.head(x * self.scale)  # ... and after it: no activation crosses

    net = Scaled()
    x = torch.randn(10, 3)
    assert "mid" in [c.name for c in nc.stitching.valid_cuts(net)]
    s = nc.stitch(net, "mid", net, "mid")
    with torch.no_grad():
        assert torch.equal(s(x), net(x))
        net.scale.mul_(2.0)  # the stitched model holds its own copy
        assert not torch.equal(s(x), net(x))


def test_evaluate_without_labels_reports_agreement_and_cross_entropy_only():
    a, b = TinyNet(6, seed=1), TinyNet(6, seed=2)
    x, _ = _data(32)
    s = nc.stitch(a, "block", b, "block")
    r = nc.stitching.evaluate(s, x)
    assert r.accuracy is None and r.accuracy_b is None and r.relative_accuracy is None
    assert 0 <= r.agreement <= 1 and r.cross_entropy > 0 and r.n_samples == 32
