"""Figure export helpers: PNG bytes and SVG text, deterministic where matplotlib allows."""

from __future__ import annotations

import io
import re
from typing import Any

__all__ = ["figure_to_png_bytes", "figure_to_svg", "png_size"]


def figure_to_png_bytes(fig: Any, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (white background, tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=dpi,
        bbox_inches="tight",
        pad_inches=0.05,
        facecolor="white",
        metadata={"Software": None},
    )
    return buf.getvalue()


_PROLOG = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.IGNORECASE)


def figure_to_svg(fig: Any, *, inline: bool = False) -> str:
    """The figure as SVG text; ``inline=True`` drops the XML prolog and DOCTYPE so the
    ``<svg>`` element can be pasted into an HTML page."""
    buf = io.StringIO()
    fig.savefig(
        buf,
        format="svg",
        bbox_inches="tight",
        pad_inches=0.05,
        facecolor="white",
        metadata={"Date": None, "Creator": None},
    )
    text = buf.getvalue()
    if inline:
        text = _PROLOG.sub("", text, count=1)
        # drop the <metadata> block (RDF with external namespace URLs)
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.DOTALL)
    return text


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
