"""Figure export helpers: PNG bytes and SVG text, deterministic where matplotlib allows."""

from __future__ import annotations

import io
import re
from typing import Any

__all__ = [
    "FIGURE_FORMATS",
    "FigureFiles",
    "figure_bytes",
    "figure_to_pdf_bytes",
    "figure_to_png_bytes",
    "figure_to_svg",
    "png_size",
]

FIGURE_FORMATS = ("png", "pdf", "svg")


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


def figure_to_pdf_bytes(fig: Any) -> bytes:
    """The figure as a vector PDF (fonts embedded as TrueType, no creation date, so the same
    figure gives the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="pdf",
        bbox_inches="tight",
        pad_inches=0.05,
        facecolor="white",
        metadata={"CreationDate": None, "Creator": None, "Producer": None},
    )
    return buf.getvalue()


def figure_bytes(fig: Any, fmt: str, dpi: int = 150) -> bytes:
    """The figure as a file's bytes: ``fmt`` one of "png", "pdf", "svg" (a complete SVG
    document with its XML prolog)."""
    if fmt == "png":
        return figure_to_png_bytes(fig, dpi=dpi)
    if fmt == "pdf":
        return figure_to_pdf_bytes(fig)
    if fmt == "svg":
        return figure_to_svg(fig).encode("utf-8")
    raise ValueError(f"unknown figure format {fmt!r}; expected one of {', '.join(FIGURE_FORMATS)}.")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


FIGURES_DIR = "figures"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class FigureFiles:
    """Writes each figure it is given as ``<out_dir>/figures/<name>.<format>`` (atomically).

    Used as the ``figure_sink`` of :func:`nncompare.report.render_html`: call it with
    ``(name, figure)``; :attr:`paths` maps each format to the files written, in order. A
    write error is kept and raised by :meth:`raise_errors` (a figure that cannot be drawn
    is the report's business; a disk that cannot be written is the caller's).

    Parameters
    ----------
    out_dir : path
        The report folder; the files go into its ``figures`` subfolder.
    formats : str or sequence of str
        Any of "png", "pdf", "svg"; empty: write nothing.
    dpi : int
        Resolution of the PNG files.
    """

    def __init__(self, out_dir: Any, formats: Any = (), dpi: int = 150) -> None:
        from pathlib import Path

        fmts = [formats] if isinstance(formats, str) else list(formats or ())
        bad = [f for f in fmts if f not in FIGURE_FORMATS]
        if bad:
            raise ValueError(
                f"formats must be a subset of {FIGURE_FORMATS}; got {tuple(fmts)!r} "
                f"(unknown: {', '.join(map(repr, bad))}). Example: formats=('png', 'pdf')."
            )
        self.formats = tuple(dict.fromkeys(fmts))
        self.directory = Path(out_dir) / FIGURES_DIR
        self.dpi = int(dpi)
        self.paths: dict[str, list[Any]] = {f: [] for f in self.formats}
        self.errors: list[OSError] = []
        self._stems: set[str] = set()

    def _stem(self, name: str) -> str:
        stem = _UNSAFE.sub("_", str(name)).strip("._") or "figure"
        base, k = stem, 2
        while stem in self._stems:
            stem = f"{base}_{k}"
            k += 1
        self._stems.add(stem)
        return stem

    def __call__(self, name: str, fig: Any) -> None:
        if not self.formats or self.errors:
            return
        from nncompare._io import atomic_write

        stem = self._stem(name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for fmt in self.formats:
                path = self.directory / f"{stem}.{fmt}"
                atomic_write(path, figure_bytes(fig, fmt, dpi=self.dpi))
                self.paths[fmt].append(path)
        except OSError as exc:
            self.errors.append(exc)

    def raise_errors(self) -> None:
        """Raise the first write error, if any, saying which folder it was."""
        if self.errors:
            exc = self.errors[0]
            raise OSError(
                f"could not write the figure files into {str(self.directory)!r}: {exc}. "
                "Check that the folder is writable and has space, or pass formats=() to "
                "embed the figures in report.html only."
            ) from exc
