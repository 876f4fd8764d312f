"""Strict-JSON conversion of a comparison and its metadata (NaN and ±inf become null).

The JSON is written from the typed :class:`nncompare.ComparisonResult`; its ``"attrs"``
member is the metadata in the serialised form of ``DataFrame.attrs``
(:attr:`nncompare.ComparisonResult.attrs`), so a file reads back into the same frame.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "dumps_strict",
    "frame_to_json_dict",
    "from_json_dict",
    "to_jsonable",
]

FORMAT = "nncompare.results"
FORMAT_VERSION = 1
_INT_COLUMNS = ("n_samples", "kept_dims_x", "kept_dims_y", "rank_x", "rank_y")


def to_jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: numpy scalars and arrays unwrapped, NaN/±inf/NA -> None,
    tuples and sets -> lists, datetimes -> ISO text, anything else -> ``str(x)``."""
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, set | frozenset):
        return [to_jsonable(v) for v in sorted(x, key=str)]
    if isinstance(x, _dt.datetime | _dt.date):
        return x.isoformat()
    if isinstance(x, PurePath):
        return str(x)
    try:
        import pandas as pd

        if x is pd.NA or x is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", None) == 0:
        return to_jsonable(x.item())
    return str(x)


def frame_to_json_dict(df: Any) -> dict[str, Any]:
    """``{"format", "format_version", "title", "columns", "records", "attrs"}`` of a
    comparison (a frame, a :class:`nncompare.ComparisonResult` or a
    :class:`nncompare.GridResult`, read once)."""
    from nncompare.plot._data import comparison

    res = comparison(df)
    table = res.table
    columns = [str(c) for c in table.columns]
    records = [
        {str(k): to_jsonable(v) for k, v in rec.items()} for rec in table.to_dict(orient="records")
    ]
    attrs = to_jsonable(res.attrs)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "title": res.title,
        "columns": columns,
        "records": records,
        "attrs": attrs,
    }


def dumps_strict(obj: Any, *, indent: int | None = 1) -> str:
    """JSON text; raises ``ValueError`` rather than ever writing NaN or Infinity."""
    return json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def from_json_dict(doc: Mapping[str, Any]) -> Any:
    """Inverse of :func:`frame_to_json_dict`: the DataFrame with its metadata in
    ``DataFrame.attrs`` (null -> NaN/NA), as :func:`nncompare.compare_models` returns it."""
    import pandas as pd

    if doc.get("format") != FORMAT:
        raise ValueError(f"not an nncompare results file (format {doc.get('format')!r}).")
    columns = list(doc.get("columns") or [])
    df = pd.DataFrame.from_records(list(doc.get("records") or []), columns=columns or None)
    if "value" in df:
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    for col in _INT_COLUMNS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    from nncompare.results import ComparisonResult, with_metadata

    meta = doc.get("attrs")
    if {"measure", "value"} <= set(df.columns):
        return ComparisonResult.from_table(df, meta).to_frame()
    return with_metadata(df, meta)  # not a comparison table: the metadata as it was
