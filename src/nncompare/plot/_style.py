"""House style for nncompare figures: one small rcParams context, colour-blind-safe colours.

Figures are built as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``: nothing is registered with a GUI backend, nothing has to be closed, and nothing is
ever shown. Matplotlib is imported only inside functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = [
    "LINE_COLORS",
    "OKABE_ITO",
    "PAPER_RC",
    "clean_text",
    "new_figure",
    "paper_style",
    "shorten",
]

# Okabe & Ito (2008) qualitative palette, distinguishable with all common colour-vision
# deficiencies (black moved last: it reads as "axis", not "data").
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
# for thin lines on white: the palette without its yellow (too faint as a line)
LINE_COLORS = tuple(c for c in OKABE_ITO if c != "#F0E442")
LINESTYLES = ("-", "--", "-.", ":")
NAN_FACE = "#dcdcdc"
NAN_HATCH_EDGE = "#8c8c8c"

PAPER_RC: dict[str, Any] = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "image.cmap": "viridis",
    "hatch.linewidth": 0.6,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "nncompare",
}


@contextlib.contextmanager
def paper_style(**overrides: Any) -> Iterator[None]:
    """Context manager applying the nncompare figure style (plus ``overrides``)."""
    import matplotlib as mpl
    from cycler import cycler

    rc = dict(PAPER_RC)
    rc["axes.prop_cycle"] = cycler(color=list(OKABE_ITO))
    rc.update(overrides)
    with mpl.rc_context(rc):
        yield


def new_figure(figsize: tuple[float, float]) -> Any:
    """A pyplot-free Figure on an Agg canvas with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def shorten(name: Any, max_len: int = 20) -> str:
    """``name`` as text, at most ``max_len`` characters, long names cut in the middle with "…".

    >>> shorten("features.denseblock4.denselayer16.conv2", 20)
    'features.d…r16.conv2'
    """
    s = str(name)
    if max_len < 3 or len(s) <= max_len:
        return s
    keep = max_len - 1
    head = (keep + 1) // 2
    tail = keep - head
    return f"{s[:head]}…{s[len(s) - tail :]}"


def clean_text(s: Any) -> str:
    """Text for matplotlib that is shown literally: ``$`` never starts mathtext."""
    return str(s).replace("$", r"\$")
