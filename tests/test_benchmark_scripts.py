"""The benchmark scripts run to the end at their smallest sizes (no timing is asserted).

The numbers in benchmarks/README.md come from these scripts; a table whose rows and header
disagree, or a section that needs an optional anchor, used to surface only in a full run
(``bench_measures.py`` without ``--measures-only`` crashed on its prototype rows). Each
script runs in its own process, as a user runs it, and must exit 0 with its tables printed
(``_util.table`` refuses a row whose length differs from the header's).
Speed is measured by the scripts themselves, never here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BENCH.is_dir(), reason="benchmarks/ is not in this checkout"),
]

# (arguments, text every run prints)
RUNS = [
    # the whole script (anchors skipped where not installed): prototype rows in its table
    (["bench_measures.py", "--quick", "--measures", "cka,cca"], "time / pooled bound"),
    (["bench_pairwise.py", "--quick"], "per-pair loop"),
    (["bench_conv.py", "--quick"], "google/svcca fourier_ccas loop"),
    (["bench_streaming.py", "--quick"], "peak"),
    (["bench_dft_stages.py", "--shape", "60,8,8,8", "--repeats", "1"], "GEMM"),
    (
        ["bench_dft_stream.py", "--shape", "60,8,8,8", "--batches", "7,30", "--repeats", "1"],
        "batches of 7",
    ),
    (["report.py", "results/full.json"], "10000 × 512, ours vs the matmul bound"),
    (
        ["bench_device.py", "--device", "cpu", "--quick", "--repeats", "1"],
        "every result stayed on cpu",
    ),
]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(("args", "expected"), RUNS, ids=[r[0][0] for r in RUNS])
def test_benchmark_script_runs_to_the_end(args: list[str], expected: str) -> None:
    proc = _run(args)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert expected in proc.stdout


# (arguments, what the one usage line on stderr says)
BAD_ARGUMENTS = [
    (["bench_dft_stages.py", "--shape", "60,8,x,8"], "--shape"),
    (["bench_dft_stream.py", "--shape", "60,8,8"], "--shape takes N,H,W,C"),
    (["bench_dft_stream.py", "--batches", "100,0"], "--batches takes positive integers"),
    (["bench_device.py", "--device", "nonsense"], "--device 'nonsense' is not usable here"),
    (["bench_device.py", "--repeats", "0"], "--repeats: expected a positive integer, got '0'"),
    (["bench_dft_stream.py", "--repeats", "x"], "--repeats: expected a positive integer, got 'x'"),
    (
        ["bench_measures.py", "--quick", "--measures-only", "--measures", "cka,foo"],
        "--measures takes a comma-separated subset of cka,cka_debiased",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_ARGUMENTS, ids=[" ".join(r[0]) for r in BAD_ARGUMENTS]
)
def test_bad_arguments_are_one_usage_line(args: list[str], message: str) -> None:
    proc = _run(args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_report_of_a_missing_results_file_is_one_line() -> None:
    proc = _run(["report.py", "results/no-such-run.json"])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("report.py: cannot read a results file:")
    assert "no-such-run.json" in proc.stderr


def test_blas_threads_one_also_gives_nncompare_one_worker() -> None:
    # --blas-threads used to limit BLAS only (threadpoolctl), while nncompare's own worker
    # threads still ran on every core: a "one thread" table that was not
    proc = _run(
        [
            "bench_measures.py",
            "--quick",
            "--measures-only",
            "--measures",
            "cka",
            "--blas-threads",
            "1",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "nncompare worker threads: 1\n" in proc.stdout
