"""Turning what users pass (arrays, conv activations, accumulated moments) into Moments."""

from __future__ import annotations

from typing import Any

from nncompare._array import as_array, harmonize
from nncompare._layout import normalize_layout, resolve_layout, to_channels_last_if
from nncompare._validation import check_option, check_pair
from nncompare.stats import JointMoments, Moments

CONV_POLICIES = ("samples", "flatten", "mean", "dft")


def is_moments(X: Any) -> bool:
    return isinstance(X, Moments)


def to_moments(
    X: Any,
    Y: Any,
    *,
    conv: str | None,
    measure: str,
    min_samples: int = 2,
    layout: str | None = None,
) -> Moments:
    """Moments of (X, Y), or X itself when it already is a Moments."""
    if isinstance(X, JointMoments):
        raise TypeError(
            f"{measure} needs the statistics of one pair of layers; got a JointMoments "
            f"holding {X.names}. Use stats.pair('layer_a', 'layer_b')."
        )
    if isinstance(X, Moments):
        if Y is not None:
            raise TypeError(
                f"{measure}(stats) takes accumulated Moments alone; got a second argument "
                f"of type {type(Y).__name__}. Call {measure}(stats) or {measure}(X, Y)."
            )
        if X.n == 0:
            raise ValueError("the Moments passed are empty: feed batches with update(X, Y) first.")
        if conv not in (None, "samples", "flatten", "mean"):
            raise ValueError(
                f"conv={conv!r} cannot be applied to accumulated Moments; the reshape policy "
                "is fixed when the batches are fed."
            )
        if X.n < min_samples:
            raise ValueError(
                f"{measure} needs at least {min_samples} samples; the Moments hold {X.n}."
            )
        return X
    if Y is None:
        raise TypeError(f"{measure}(X, Y) needs two activation matrices; Y is missing.")
    X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=min_samples, measure=measure)
    # the exact path: measures that check their sensitivity to float32 products opt in to
    # them through nncompare.measures._linalg.linear_moments
    return Moments.from_arrays(X, Y, validated=True, precision="float64")


def prepare_pair(
    X: Any,
    Y: Any,
    *,
    conv: str | None,
    min_samples: int = 2,
    measure: str = "this measure",
    layout: str | None = None,
) -> tuple[Any, Any]:
    """Validate a pair of arrays, applying a convolutional reshape policy when asked.

    With ``conv``, each side's layout is resolved (:func:`nncompare._layout.resolve_layout`:
    the explicit ``layout``, else the array's own tag, else channels last) and
    channels-first arrays are moved channels last before the reshape.
    """
    if isinstance(X, Moments | JointMoments) or isinstance(Y, Moments | JointMoments):
        raise TypeError(
            f"{measure} needs the samples themselves, not accumulated moments (it is not a "
            "function of means and covariances); pass the activation arrays X and Y."
        )
    if Y is None:
        raise TypeError(f"{measure}(X, Y) needs two activation matrices; Y is missing.")
    if conv is not None:
        check_option("conv", conv, CONV_POLICIES)  # before reading layouts: a typo first
        lx = resolve_layout(X, layout, name="X") if getattr(X, "ndim", 0) > 2 else None
        ly = resolve_layout(Y, layout, name="Y") if getattr(Y, "ndim", 0) > 2 else None
    elif layout is not None:
        normalize_layout(layout)
    X = as_array(X, name="X")
    Y = as_array(Y, name="Y")
    X, Y = harmonize(X, Y)
    if conv is not None:
        X = to_channels_last_if(X, lx) if lx else X
        Y = to_channels_last_if(Y, ly) if ly else Y
        from nncompare.measures.conv import reshape_pair

        if conv == "dft":
            raise ValueError("conv='dft' is handled by the DFT path, not by a reshape.")
        X, Y = reshape_pair(X, Y, conv, layout="NHWC")  # both channels last by now
    return check_pair(X, Y, min_samples=min_samples)
