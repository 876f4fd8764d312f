"""Shared helpers for the nncompare benchmarks: timing, environment, tables.

Plain module imported by the ``bench_*.py`` scripts (benchmarks/ is not a package and
is not collected by pytest).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def early_thread_limit(argv: list[str]) -> int | None:
    """Apply ``--blas-threads N`` through the environment, before numpy/scipy/torch load.

    Environment variables reach every BLAS copy loaded later (numpy's and scipy's OpenBLAS,
    torch's OpenMP pool); threadpoolctl only limits libraries already loaded.
    """
    val = None
    for i, a in enumerate(argv):
        if a == "--blas-threads" and i + 1 < len(argv):
            val = argv[i + 1]
        elif a.startswith("--blas-threads="):
            val = a.split("=", 1)[1]
    if val is None:
        return None
    n = int(val)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(n)
    return n


# torch-cka wraps its loop in tqdm; tqdm reads TQDM_* variables when it is imported
os.environ.setdefault("TQDM_DISABLE", "1")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# --------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Wall-clock seconds of repeated calls (``time.perf_counter``)."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU seconds (all threads)
    last: Any = field(default=None, repr=False)  # what the last timed call returned

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def min(self) -> float:
        return min(self.times) if self.times else float("nan")

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "cpu_median_s": self.cpu_median,
            "repeats": len(self.times),
            "times_s": [round(t, 6) for t in self.times],
            "cpu_s": [round(t, 6) for t in self.cpu],
        }


def positive_int(text: str) -> int:
    """argparse type for counts such as --repeats: a positive integer, or a usage error."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def time_call(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result) of one call, with the cyclic GC paused.

    As in :mod:`timeit`: a collection triggered inside the timed call would charge the
    benchmark's own garbage to the function. Callers run ``gc.collect()`` between groups.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        t1 = time.perf_counter()
        c1 = time.process_time()
    finally:
        if enabled:
            gc.enable()
    return t1 - t0, c1 - c0, out


#: pause before each timed call (seconds). OpenBLAS's worker threads keep spinning on the
#: cores for about 0.1 s after a call returns; numpy and scipy each ship their own OpenBLAS,
#: so a call made while the other library's threads still spin runs at up to half speed
#: with two cores, and the spinning is charged to its CPU time. Each timed call starts on
#: idle cores instead.
SETTLE_S = 0.2


def settle() -> None:
    """Let the BLAS worker threads of the previous call go idle."""
    time.sleep(SETTLE_S)


def bench(fn: Callable[[], Any], *, repeats: int, warmup: int = 1) -> Timing:
    """Median-able timings of ``fn`` after ``warmup`` untimed calls, each timed call after
    :func:`settle`."""
    gc.collect()
    for _ in range(warmup):
        fn()
    t = Timing()
    for _ in range(repeats):
        settle()
        dt, dc, t.last = time_call(fn)
        t.times.append(dt)
        t.cpu.append(dc)
    return t


def bench_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Time several functions round-robin, so that a changing machine load hits all alike.

    The machine these benchmarks run on may be shared; interleaving the reference
    products with the measure they bound keeps their ratio meaningful under load drift.
    Each timed call starts after :func:`settle`, so that no call pays for the spinning
    BLAS threads of the one before it.
    """
    gc.collect()
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = {k: Timing() for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            settle()
            dt, dc, out[k].last = time_call(fn)
            out[k].times.append(dt)
            out[k].cpu.append(dc)
    return out


# --------------------------------------------------------------------------- environment
def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:  # pragma: no cover - non-Linux
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def _pkg_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    import numpy as np

    env: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_start": loadavg(),
        "versions": {
            k: _pkg_version(k)
            for k in ("nncompare", "numpy", "scipy", "torch", "ckatorch", "torch-cka")
        },
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        env["numpy_blas"] = {
            "name": blas.get("name"),
            "version": blas.get("version"),
            "config": blas.get("openblas configuration"),
        }
    except Exception as exc:  # pragma: no cover - numpy without dict config
        env["numpy_blas"] = {"error": repr(exc)}
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {
                "api": i.get("internal_api"),
                "threads": i.get("num_threads"),
                "arch": i.get("architecture"),
                "version": i.get("version"),
                "lib": Path(i.get("filepath", "")).name,
            }
            for i in threadpool_info()
        ]
    except Exception:  # pragma: no cover - threadpoolctl missing
        env["threadpools"] = None
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        show = torch.__config__.show()
        env["torch_blas"] = re.findall(r"\b(?:BLAS_INFO|LAPACK_INFO|USE_OPENMP)=\w+", show)
    except Exception as exc:  # pragma: no cover - torch missing
        env["torch_threads"] = None
        env["torch_blas"] = repr(exc)
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
        )
        env["git_head"] = rev.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        env["src_modified_since_head"] = bool(dirty.stdout.strip())
    except Exception:  # pragma: no cover - no git
        env["git_head"] = None
    return env


@contextlib.contextmanager
def section(name: str, record: dict[str, Any]) -> Iterator[None]:
    """Print a header, record wall time and the load average around a benchmark section."""
    print(f"\n=== {name} " + "=" * max(0, 70 - len(name)), flush=True)
    record.setdefault("loadavg_before", loadavg())
    t0 = time.perf_counter()
    try:
        yield
    finally:
        record["section_wall_s"] = round(time.perf_counter() - t0, 2)
        record["loadavg_after"] = loadavg()
        print(
            f"--- {name}: {record['section_wall_s']:.1f} s "
            f"(load avg {record['loadavg_before']} -> {record['loadavg_after']})",
            flush=True,
        )


# --------------------------------------------------------------------------- output
def fmt_s(t: float) -> str:
    if t != t:  # nan
        return "n/a"
    if t >= 100:
        return f"{t:.0f} s"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} µs"


def fmt_x(r: float | None) -> str:
    if r is None or r != r:
        return "n/a"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A GitHub-markdown table (also readable in a terminal)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def write_json(obj: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def quiet_third_party() -> None:
    """Silence torch-cka's tqdm bars and its 'identical names' warnings."""
    import warnings

    warnings.filterwarnings("ignore", module="torch_cka")
    warnings.filterwarnings("ignore", message=".*Dataloader for Model 2.*")
