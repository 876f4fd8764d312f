"""The result store of resumable runs: finished tidy rows in one sqlite file.

``resume=DIR`` on :func:`nncompare.compare_many` (and :func:`nncompare.compare_models`)
keeps every finished row in ``DIR/results.sqlite``, keyed by what decides its value: the
fingerprints of both models (:func:`nncompare.capture.model_fingerprint`), the layer pair,
the measure, its options, the run options that change values (``conv``, ``max_samples``)
and the data fingerprint (a hash of every input byte). A run that is interrupted (even by
``kill -9``) and started again computes only the rows that are missing: each finished
model pair is one sqlite transaction, so a row is either stored whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "data_fingerprint", "row_key"]

FILE = "results.sqlite"
_SCHEMA = "nncompare.results/1"


def data_fingerprint(data: Any, *, batch_size: int, max_samples: int | None) -> str:
    """A hash of every input the comparison sees (dtype, shape, bytes, sample count)."""
    from nncompare.capture._cache import _DataHasher
    from nncompare.capture._data import iter_batches

    hasher = _DataHasher()
    for x in iter_batches(data, batch_size=batch_size, device="cpu", max_samples=max_samples):
        hasher.update(x)
    return hasher.hexdigest()


def row_key(
    fingerprints: tuple[str, str],
    layers: tuple[str, str],
    measure: str,
    options: Mapping[str, Any],
    run: Mapping[str, Any],
    data: str,
) -> str:
    """The store key of one tidy row (a JSON string; stable across processes)."""
    return json.dumps(
        {
            "models": list(fingerprints),
            "layers": list(layers),
            "measure": measure,
            "options": dict(options),
            "run": dict(run),
            "data": data,
        },
        sort_keys=True,
        default=repr,
    )


class ResultStore:
    """Finished rows of resumable runs, in ``directory/results.sqlite``.

    Parameters
    ----------
    directory : path
        Created if missing. The same directory can hold the rows of many runs (the keys
        tell them apart).
    """

    def __init__(self, directory: Any) -> None:
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(
                f"resume expects a directory for the result store; {str(path)!r} is a file. "
                "Pass a new or existing directory."
            )
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / FILE
        self._conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            with self._conn:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)"
                )
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS rows ("
                    "key TEXT PRIMARY KEY, row TEXT NOT NULL, stored REAL NOT NULL)"
                )
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (_SCHEMA,))
            (schema,) = self._conn.execute(
                "SELECT value FROM meta WHERE name = 'schema'"
            ).fetchone()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise ValueError(
                f"{str(self.path)!r} is not an nncompare result store ({err}); pass another "
                "resume directory or delete the file."
            ) from None
        if schema != _SCHEMA:
            self._conn.close()
            raise ValueError(
                f"{str(self.path)!r} holds a result store of format {schema!r}; this version "
                f"of nncompare reads {_SCHEMA!r}. Pass another resume directory."
            )

    def get(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``keys``: ``{key: row}``."""
        keys = list(keys)
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, row in self._conn.execute(
                f"SELECT key, row FROM rows WHERE key IN ({marks})", part
            ):
                out[key] = json.loads(row)
        return out

    def put(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{key: row}`` in one transaction (all of them or none)."""
        now = time.time()
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO rows VALUES (?, ?, ?)",
                [(k, json.dumps(dict(r), default=_plain), now) for k, r in rows.items()],
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _plain(v: Any) -> Any:
    """numpy scalars and pandas' NA as JSON values."""
    if hasattr(v, "item"):
        return v.item()
    return None
