"""The declared constraints of the options the measures share (see ``_validation.constrain``).

Each measure function is decorated with ``@constrain(...)`` in its family module, using these
for the options every measure of activations takes (``conv``, ``layout``, ``precision``,
``rtol``) beside its own. The registry exposes them as :attr:`MeasureInfo.parameters`, the
command line checks ``--measure name:key=value`` with them, and
tests/test_param_constraints.py generates the invalid-option tests from them.
"""

from __future__ import annotations

from typing import Any

from nncompare._layout import normalize_layout
from nncompare._validation import Boolean, Interval, Options, Pair, Satisfies, constrain

__all__ = [
    "CONV",
    "LAYOUT",
    "POSITIVE_INT",
    "PRECISION",
    "RTOL",
    "Boolean",
    "Interval",
    "Options",
    "Pair",
    "constrain",
]


def _is_layout(value: Any) -> bool:
    return isinstance(value, str) and normalize_layout(value) is not None


#: ``conv=``: the reshape policies of convolutional activations (None: 2-D input). Measures
#: that do not take "dft" say so themselves, with the measures that do.
CONV = [Options("samples", "flatten", "mean", "dft"), None]
#: ``layout=``: where the channels of convolutional activations are (any accepted spelling).
LAYOUT = [
    Satisfies(
        _is_layout,
        "be 'NHWC' (channels last) or 'NCHW' (channels first)",
        example="NHWC",
        invalid=["NWHC", "channels", 3],
    ),
    None,
]
#: ``precision=``: the precision of the products.
PRECISION = Options("auto", "float32", "float64")
#: ``rtol=``: the relative eigenvalue cut-off of the numerical rank.
RTOL = Interval(float, 0, 1, closed="neither")
#: An integer >= 1 (``k=``, ``dims=``).
POSITIVE_INT = Interval(int, 1, None, closed="left")
