"""Shared fixtures: the ../shared data folder, the reference outputs (skipped when absent),
and a one-thread torch setting for modules that train or run models."""

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


@pytest.fixture
def runner():
    """A click test runner for the command-line tests."""
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread, then restore the setting.

    Torch's multi-threaded CPU kernels slow down many-fold when the cores are shared with
    other processes (as on CI runners); one thread keeps these tests fast and steady. The
    library itself never changes the thread count. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
