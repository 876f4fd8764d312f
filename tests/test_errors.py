"""One error layer: every exception nncompare defines is an NNCompareError and keeps the
built-in type users already catch; every warning is an NNCompareWarning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nncompare as nc
from nncompare import errors

EXCEPTIONS = {
    "InsufficientMemoryError": MemoryError,
    "InvalidParameterError": ValueError,
    "ProductPrecisionError": ValueError,
    "UnsafeCheckpointError": ValueError,
    "NotFittedError": ValueError,
    "LayerNotFoundError": KeyError,
    "InvalidCacheError": ValueError,
    "StaleCacheError": ValueError,
}
WARNINGS = ["RankDeficiencyWarning", "ConstantFeatureWarning", "LayoutWarning"]


def test_every_listed_name_resolves_and_is_documented():
    assert sorted(errors.__all__) == sorted(
        [*EXCEPTIONS, *WARNINGS, "NNCompareError", "NNCompareWarning"]
    )
    for name in errors.__all__:
        obj = getattr(errors, name)
        assert isinstance(obj, type) and obj.__name__ == name and obj.__doc__
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        errors.Nope  # noqa: B018


@pytest.mark.parametrize(("name", "builtin"), sorted(EXCEPTIONS.items()))
def test_exceptions_keep_their_builtin_type(name, builtin):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.NNCompareError) and issubclass(cls, builtin)


@pytest.mark.parametrize("name", WARNINGS)
def test_warnings_share_one_base(name):
    assert issubclass(getattr(errors, name), errors.NNCompareWarning)
    assert errors.LayoutWarning is nc.LayoutWarning


def test_one_filter_turns_every_nncompare_warning_into_an_error():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    X = np.hstack([X, X[:, :1]])  # a duplicated feature: rank deficiency
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.NNCompareWarning)
        with pytest.raises(errors.RankDeficiencyWarning, match="linearly dependent"):
            nc.cca(X, rng.normal(size=(50, 2)))


def test_a_raised_error_is_caught_by_the_base():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(errors.NNCompareError, match=r"No layer named .1. in Sequential"):
        nc.capture(net, torch.zeros(4, 3), ["1"])
