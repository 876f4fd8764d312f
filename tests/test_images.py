"""prepare_images: image batches in either layout, uint8 or float (issue: first hour, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nncompare.workbench.data import parse_scale, prepare_images  # noqa: E402
from nncompare.workbench.models import CIFAR_MEAN, CIFAR_STD, cifar_preprocess  # noqa: E402


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1/255", 1 / 255), ("0.5", 0.5), ("255", 255.0), (" 2/4 ", 0.5), (0.25, 0.25)],
)
def test_parse_scale_reads_numbers_and_fractions(text, value):
    assert parse_scale(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["1/0", "abc", "1/2/3", "-1", "0", "nan", "inf"])
def test_parse_scale_rejects_bad_text(text):
    with pytest.raises(ValueError, match=r"expected a (finite positive )?scale such as 1/255"):
        parse_scale(text)


def test_nhwc_uint8_matches_the_resnet_preprocessing():
    x = _images((5, 32, 32, 3))
    p = prepare_images(x, mean=CIFAR_MEAN, std=CIFAR_STD)
    assert p.layout == "NHWC" and p.detected
    assert p.scale == pytest.approx(1 / 255)
    assert tuple(p.x.shape) == (5, 3, 32, 32) and p.x.dtype == torch.float32
    torch.testing.assert_close(p.x, cifar_preprocess(x), rtol=1e-6, atol=1e-6)
    assert any("divided by 255" in n for n in p.notes)


@pytest.mark.parametrize("layout", ["auto", "NHWC", "NCHW"])
def test_a_channel_count_no_layout_gives_is_refused_whatever_the_layout(layout):
    """(N, 5, 5, 2) for a 3-channel model: neither reading fits, so no layout flag helps."""
    x = np.zeros((4, 5, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"have 2 channels read as \(N, H, W, C\) and 5 read as"):
        prepare_images(x, channels=3, layout=layout)


def test_nchw_float_input_is_left_channels_first():
    x = np.random.default_rng(1).random((4, 3, 16, 16)).astype(np.float32)
    p = prepare_images(x)
    assert p.layout == "NCHW" and p.detected and p.scale is None
    np.testing.assert_array_equal(p.x.numpy(), x)


def test_expected_channels_decide_when_the_shape_alone_cannot():
    # (N, 3, 3, 3): every axis could be channels without knowing the model.
    x = np.random.default_rng(2).random((2, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"cannot tell whether images of shape \(2, 3, 3, 3\)"):
        prepare_images(x)
    p = prepare_images(x, layout="NHWC")
    np.testing.assert_array_equal(p.x.numpy(), np.moveaxis(x, 3, 1))
    # (N, 4, 32, 4)-like shapes resolve by the model's channel count.
    y = np.random.default_rng(3).random((2, 4, 8, 3)).astype(np.float32)
    assert prepare_images(y, channels=3).layout == "NHWC"
    assert prepare_images(y, channels=4).layout == "NCHW"


def test_channel_mismatch_names_the_other_layout():
    x = _images((2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"read as NCHW have 32 channels, but the model expects 3"):
        prepare_images(x, layout="NCHW", channels=3)


def test_wrong_number_of_normalisation_values():
    with pytest.raises(ValueError, match=r"expected 1 or 3 mean values \(one per channel\); got 2"):
        prepare_images(_images((2, 8, 8, 3)), mean="0.5,0.5")
    with pytest.raises(ValueError, match=r"expected 1 mean value \(one per channel\); got 3"):
        prepare_images(np.zeros((2, 1, 8, 8), np.float32), mean="0.5,0.5,0.5")
    with pytest.raises(ValueError, match="expected positive std values"):
        prepare_images(_images((2, 8, 8, 3)), std="0.5,0,0.5")
    with pytest.raises(ValueError, match=r"comma-separated numbers such as 0\.485"):
        prepare_images(_images((2, 8, 8, 3)), mean="red")


def test_non_finite_and_bad_dtype_and_layout_option():
    x = np.ones((2, 3, 8, 8), np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values after conversion"):
        prepare_images(x)
    with pytest.raises(ValueError, match="expected real-valued images"):
        prepare_images(np.ones((2, 3, 8, 8), np.complex64))
    with pytest.raises(ValueError, match=r"layout must be one of \('auto', 'NHWC', 'NCHW'\)"):
        prepare_images(x, layout="HWC")
    with pytest.raises(ValueError, match="applies to 4-D image batches"):
        prepare_images(np.ones((2, 5), np.float32), layout="NHWC")


def test_two_dimensional_input_is_scaled_and_normalised_per_feature():
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    p = prepare_images(x, scale="1/2", mean=[1.0, 2.0, 3.0], std="2")
    expected = (x / 2 - np.array([1.0, 2.0, 3.0])) / 2
    np.testing.assert_allclose(p.x.numpy(), expected, rtol=1e-6)
    assert p.layout == "none"


@pytest.mark.shared
def test_shared_cifar_in_either_layout_gives_the_published_resnet20_accuracy(shared_dir):
    """The shared NHWC uint8 CIFAR-10 file, as is and transposed to NCHW, through
    prepare_images: ResNet-20 reaches the 91.64% measured on these 1017 images
    (shared/data/README.md)."""
    from nncompare.workbench.models import cifar_resnet

    ckpt = sorted((shared_dir / "data" / "akamaster_resnet_cifar10").glob("resnet20-*.th"))
    if not ckpt:
        pytest.skip("pretrained ResNet-20 not in shared/")
    with np.load(shared_dir / "data" / "cifar10" / "cifar10_test_exact1017.npz") as f:
        x, y = f["x"], f["y"]
    net = cifar_resnet(20, weights=ckpt[0]).eval()
    torch.set_num_threads(1)
    for images in (x, np.ascontiguousarray(x.transpose(0, 3, 1, 2))):
        p = prepare_images(images, channels=3, mean=CIFAR_MEAN, std=CIFAR_STD)
        with torch.inference_mode():
            pred = torch.cat([net(b).argmax(1) for b in p.x.split(256)])
        acc = float((pred.numpy() == y).mean())
        assert acc == pytest.approx(0.9164, abs=5e-4)
