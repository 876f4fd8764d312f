"""Moments.cached: the per-side cache the measures keep their decompositions in (issue #8)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompare as nc
import nncompare.measures._linalg as linalg


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(300, 4))
    return {
        "a": Z @ rng.normal(size=(4, 6)) + 0.1 * rng.normal(size=(300, 6)),
        "b": Z @ rng.normal(size=(4, 5)) + 0.1 * rng.normal(size=(300, 5)),
        "c": rng.normal(size=(300, 7)),
    }


def test_compute_runs_once_per_side_and_key():
    d = _data()
    m = nc.Moments().update(d["a"], d["b"])
    calls: list[str] = []

    def make(tag: str) -> str:
        calls.append(tag)
        return tag

    assert m.cached("x", "k", lambda: make("x1")) == "x1"
    assert m.cached("x", "k", lambda: make("x2")) == "x1"  # cached: not recomputed
    assert m.cached("y", "k", lambda: make("y1")) == "y1"  # the other side is its own
    assert m.cached("x", "other", lambda: make("x3")) == "x3"
    assert calls == ["x1", "y1", "x3"]


def test_the_cache_follows_the_layer_through_swapped_and_is_emptied_by_update():
    d = _data()
    m = nc.Moments().update(d["a"], d["b"])
    m.cached("x", "k", lambda: "of a")
    assert m.swapped().cached("y", "k", lambda: "recomputed") == "of a"
    m.update(d["a"][:10], d["b"][:10])  # new moments: old preparations are stale
    assert m.cached("x", "k", lambda: "fresh") == "fresh"


def test_pair_views_share_each_layers_whitening(monkeypatch):
    """A grid of CCA pairs from one JointMoments whitens each layer once."""
    d = _data()
    joint = nc.JointMoments().update(d)
    whitened: list[int] = []
    real = linalg.whiten

    def counting(xp, C, *args, **kwargs):
        whitened.append(int(C.shape[-1]))
        return real(xp, C, *args, **kwargs)

    monkeypatch.setattr(linalg, "whiten", counting)
    grid = {(x, y): float(nc.cca(joint.pair(x, y))) for x in "ab" for y in "bc"}
    # four pairs, three layers (6, 5 and 7 features): each whitened once
    assert sorted(whitened) == [5, 6, 7]
    assert grid["a", "b"] == pytest.approx(float(nc.cca(d["a"], d["b"])), abs=1e-10)


def test_which_must_name_a_side():
    d = _data()
    m = nc.Moments().update(d["a"], d["b"])
    with pytest.raises(ValueError, match=r"which must be one of 'x', 'y'; got 'z'"):
        m.cached("z", "k", lambda: None)
