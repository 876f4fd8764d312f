"""Convolutional layouts: explicit, tagged, never guessed silently (issue: first hour, item 1).

Reproducer: capture returns torch's (N, C, H, W); the measures' conv= read channels last, so
capture output passed straight in gave ResNet-20 vs ResNet-32 ``layer2.0`` CKA 0.154 instead
of 0.935. Now captured arrays carry their layout and every measure takes ``layout=``.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures import available

torch = pytest.importorskip("torch")

ACTIVATION_MEASURES = sorted(k for k, v in available().items() if v.input == "activations")


def _nchw(n: int = 40, c: int = 5, h: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c, h, h))


def test_layout_array_keeps_its_tag_only_where_axes_cannot_move():
    a = nc.LayoutArray(_nchw(), "NCHW")
    assert a.layout == "NCHW"
    assert a[:10].layout == "NCHW"
    assert a[np.arange(40) % 2 == 0].layout == "NCHW"
    assert a[[0, 3, 5], ...].layout == "NCHW"
    assert a[5:, :, :, :].layout == "NCHW"
    assert (a * 2.0 + 1.0).layout == "NCHW"  # element-wise
    for moved in (
        a.reshape(40, -1),
        a.transpose(0, 2, 3, 1),
        np.moveaxis(a, 1, -1),
        a[:, 0],
        a[:, :2],
        a.mean(axis=1, keepdims=True),
        a[None],
    ):
        assert getattr(moved, "layout", None) is None, moved.shape
    assert not isinstance(a[0], nc.LayoutArray) or a[0].layout is None
    back = pickle.loads(pickle.dumps(a))
    assert back.layout == "NCHW"
    np.testing.assert_array_equal(back, a)


def test_layout_array_rejects_bad_input():
    with pytest.raises(ValueError, match=r"layout must be 'NHWC' \(channels last\) or 'NCHW'"):
        nc.LayoutArray(_nchw(), "CHW")
    with pytest.raises(ValueError, match=r"at least one spatial axis.*got shape \(4, 3\)"):
        nc.LayoutArray(np.zeros((4, 3)), "NCHW")


@pytest.mark.parametrize("name", ACTIVATION_MEASURES)
@pytest.mark.parametrize("conv", ["mean", "flatten", "samples"])
def test_every_measure_reads_tagged_and_explicit_channels_first(name, conv):
    fn = available()[name].function
    if name == "cka_rbf" or name in ("rsa", "mutual_knn"):
        X, Y = _nchw(30, 3, 4, 0), _nchw(30, 2, 4, 1)
    else:
        X, Y = _nchw(300, 3, 4, 0), _nchw(300, 2, 4, 1)
    Y = Y + 0.5 * X[:, :2]
    if conv == "samples" and name in ("cka_rbf", "rsa", "mutual_knn", "cka_debiased"):
        pytest.skip("O((n·h·w)²) measures: covered by mean/flatten")
    opts = {"dims": 2} if name == "svcca" else {}
    expected = float(fn(np.moveaxis(X, 1, -1), np.moveaxis(Y, 1, -1), conv=conv, **opts))
    tagged = float(fn(nc.LayoutArray(X, "NCHW"), nc.LayoutArray(Y, "NCHW"), conv=conv, **opts))
    explicit = float(fn(torch.from_numpy(X), torch.from_numpy(Y), conv=conv, layout="NCHW", **opts))
    assert tagged == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert explicit == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_untagged_channels_first_looking_array_warns_naming_both_layouts():
    X, Y = _nchw(50, 8, 6, 0), _nchw(50, 8, 6, 1)
    with pytest.warns(nc.LayoutWarning, match=r"read channels-last .* looks channels-first"):
        nc.cka(X, Y, conv="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.LayoutWarning)
        nc.cka(X, Y, conv="mean", layout="NHWC")  # confirmed: no warning
        nc.cka(X, Y, conv="mean", layout="NCHW")
        nc.cka(np.moveaxis(X, 1, -1), np.moveaxis(Y, 1, -1), conv="mean")  # looks NHWC


def test_explicit_layout_contradicting_the_tag_is_an_error():
    X = nc.LayoutArray(_nchw(), "NCHW")
    with pytest.raises(ValueError, match=r"X is tagged NCHW .* but layout='NHWC' was passed"):
        nc.cka(X, X, conv="mean", layout="NHWC")
    with pytest.raises(ValueError, match=r"layout must be 'NHWC' \(channels last\)"):
        nc.cka(_nchw(), _nchw(), conv="mean", layout="HWC")
    with pytest.raises(ValueError, match=r"layout must be 'NHWC' \(channels last\)"):
        nc.cka(np.zeros((5, 2)), np.zeros((5, 2)), layout="bad")


def test_spellings_of_layouts():
    X, Y = _nchw(60, 3, 4, 0), _nchw(60, 3, 4, 1)
    ref = float(nc.cka(X, Y, conv="mean", layout="NCHW"))
    for spelling in ("nchw", "channels_first", "NCL"):
        assert float(nc.cka(X, Y, conv="mean", layout=spelling)) == ref
    one_d = np.random.default_rng(2).normal(size=(60, 3, 10))  # (N, C, L)
    np.testing.assert_allclose(
        float(nc.cka(one_d, one_d[:, ::-1], conv="flatten", layout="NCL")),
        float(
            nc.cka(np.moveaxis(one_d, 1, -1), np.moveaxis(one_d[:, ::-1], 1, -1), conv="flatten")
        ),
        rtol=1e-12,
    )


def test_dft_path_and_reshape_conv_and_rdm_read_the_layout():
    X, Y = _nchw(200, 3, 4, 0), _nchw(200, 2, 4, 1)
    Xl, Yl = np.moveaxis(X, 1, -1), np.moveaxis(Y, 1, -1)
    ref = float(nc.cca(Xl, Yl, conv="dft"))
    # one side tagged, the other already channels last: each side is read by its own layout
    np.testing.assert_allclose(float(nc.cca(nc.LayoutArray(X, "NCHW"), Yl, conv="dft")), ref)
    np.testing.assert_allclose(
        float(nc.cca(X, Y, conv="dft", layout="NCHW")),
        ref,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        float(nc.svcca(nc.LayoutArray(X, "NCHW"), nc.LayoutArray(Y, "NCHW"), conv="dft")),
        float(nc.svcca(Xl, Yl, conv="dft")),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(
        nc.reshape_conv(X, "flatten", layout="NCHW"), nc.reshape_conv(Xl, "flatten")
    )
    np.testing.assert_allclose(
        nc.rdm(X, conv="mean", layout="NCHW"), nc.rdm(Xl, conv="mean"), rtol=1e-12
    )


def test_pairwise_reads_tags_and_layout():
    X, Y = _nchw(100, 3, 4, 0), _nchw(100, 2, 4, 1)
    Xl, Yl = np.moveaxis(X, 1, -1), np.moveaxis(Y, 1, -1)
    ref = nc.pairwise({"x": Xl, "y": Yl}, measures=["cka"], conv="mean").values["cka"]
    tagged = nc.pairwise(
        {"x": nc.LayoutArray(X, "NCHW"), "y": nc.LayoutArray(Y, "NCHW")},
        measures=["cka"],
        conv="mean",
    ).values["cka"]
    explicit = nc.pairwise({"x": X, "y": Y}, measures=["cka"], conv="mean", layout="NCHW")
    np.testing.assert_allclose(tagged, ref, rtol=1e-12)
    np.testing.assert_allclose(explicit.values["cka"], ref, rtol=1e-12)


def test_capture_output_is_tagged_and_to_channels_last_retags():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    x = torch.randn(12, 3, 8, 8)
    acts = nc.capture(net, x, ["0", "2"])
    assert acts["0"].layout == "NCHW" and acts["0"].shape == (12, 4, 6, 6)
    assert not isinstance(acts["2"], nc.LayoutArray)
    last = nc.capture.to_channels_last(acts["0"])
    assert last.layout == "NHWC" and last.shape == (12, 6, 6, 4)
    assert nc.capture.to_channels_last(last) is last
    other = acts["0"][::-1] * 2.0 + 1.0  # sample selection and element-wise ops keep the tag
    assert other.layout == "NCHW"
    np.testing.assert_allclose(
        float(nc.cka(acts["0"], other, conv="mean")),
        float(nc.cka(np.asarray(last), np.moveaxis(np.asarray(other), 1, -1), conv="mean")),
        rtol=1e-12,
    )


@pytest.mark.shared
@pytest.mark.slow
def test_capture_output_straight_into_cka_equals_compare_models_on_real_resnets(shared_dir):
    """The issue's reproducer on the pretrained ResNets: layer2.0 CKA from capture output
    passed straight into nc.cka is compare_models' value (0.935 on the full 1017 images),
    not the 0.154 of reading NCHW as NHWC."""
    from nncompare.workbench.models import CIFAR_MEAN, CIFAR_STD, cifar_resnet

    folder = shared_dir / "data" / "akamaster_resnet_cifar10"
    c20, c32 = sorted(folder.glob("resnet20-*.th")), sorted(folder.glob("resnet32-*.th"))
    if not (c20 and c32):
        pytest.skip("pretrained ResNets not in shared/")
    with np.load(shared_dir / "data" / "cifar10" / "cifar10_test_exact1017.npz") as f:
        x = nc.data.prepare_images(f["x"][:512], mean=CIFAR_MEAN, std=CIFAR_STD).x
    torch.set_num_threads(1)
    a, b = cifar_resnet(20, weights=c20[0]).eval(), cifar_resnet(32, weights=c32[0]).eval()
    acts_a = nc.capture(a, x, ["layer2.0"], progress=False)
    acts_b = nc.capture(b, x, ["layer2.0"], progress=False)
    straight = float(nc.cka(acts_a["layer2.0"], acts_b["layer2.0"], conv="mean"))
    df = nc.compare_models(
        a, b, x, layers_a=["layer2.0"], layers_b=["layer2.0"], measures=["cka"], conv="mean"
    )
    assert straight == pytest.approx(float(df["value"].iloc[0]), rel=1e-6)
    assert straight > 0.85
    wrong = float(nc.cka(np.asarray(acts_a["layer2.0"]), np.asarray(acts_b["layer2.0"]),
                         conv="mean", layout="NHWC"))  # fmt: skip
    assert wrong < 0.5  # the trap, for the record: reading NCHW as channels last


def test_a_conv_typo_is_reported_before_any_layout_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.LayoutWarning)
        with pytest.raises(ValueError, match=r"conv must be one of .*got 'meen'"):
            nc.cka(_nchw(), _nchw(), conv="meen")
