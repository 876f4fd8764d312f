"""The weight lens's applications: the factorized VGG, the CLI command, the report section."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nncompare.workbench.models import FactorizedVGG, FrozenDepthwise, factorized_vgg

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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
