"""Helpers shared by the command-line tests."""

from __future__ import annotations

from typing import Any


def error_line(res: Any) -> str:
    """The single 'Error: …' line of a failed command (asserting there is exactly one and no
    traceback)."""
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, res.output
    return errors[0]
