"""Shared fixtures: the ../shared data folder and the reference outputs (skipped when absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import reference_map


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """<repo>/../shared, or $NNCOMPARE_SHARED; skips the test when it does not exist."""
    path = reference_map.shared_dir()
    if path is None:
        pytest.skip("shared data folder not found (set NNCOMPARE_SHARED)")
    return path


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    """shared/reference/reference_outputs.json, non-finite strings decoded."""
    ref = reference_map.load_reference()
    if ref is None:
        pytest.skip("shared/reference/reference_outputs.json not found (set NNCOMPARE_SHARED)")
    return ref
