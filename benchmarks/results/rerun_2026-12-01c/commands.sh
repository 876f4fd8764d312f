#!/bin/bash
OUT="$(cd "$(dirname "$0")" && pwd)"
cd "$OUT/../../.."  # the repository root
P=.venv/bin/python
uptime > "$OUT/load_start.txt"
lscpu | head -20 > "$OUT/lscpu.txt"
( time env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $P benchmarks/bench_measures.py --measures-only --blas-threads 1 --repeats 7 ) > "$OUT/measures_1t.txt" 2>&1
( time $P benchmarks/bench_measures.py --measures-only --repeats 7 ) > "$OUT/measures_2t.txt" 2>&1
( time env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $P benchmarks/bench_conv.py --vs-google ) > "$OUT/conv_1t.txt" 2>&1
( time $P benchmarks/bench_conv.py --vs-google ) > "$OUT/conv_2t.txt" 2>&1
( time env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $P benchmarks/bench_pairwise.py --grid ) > "$OUT/grid_1t.txt" 2>&1
( time $P benchmarks/bench_pairwise.py --grid ) > "$OUT/grid_2t.txt" 2>&1
( time $P benchmarks/bench_blas_libraries.py ) > "$OUT/blas_libraries_2t.txt" 2>&1
uptime > "$OUT/load_end.txt"
