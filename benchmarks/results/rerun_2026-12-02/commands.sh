#!/usr/bin/env bash
# what produced the files beside this one, in the order they ran (from benchmarks/,
# nothing else running; 2026-12-02 14:05-14:36 UTC, AMD EPYC 2-core VM). The grid and conv
# runs were made with a cka_debiased centring change that was then reverted; it touches
# neither path. The two measures runs are of the committed code.
python bench_pairwise.py --grid > grid_2t_run1.txt
python bench_conv.py --vs-google > conv_2t.txt
python bench_pairwise.py --grid > grid_2t_run2.txt
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench_pairwise.py --grid > grid_1t.txt
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench_conv.py --vs-google > conv_1t.txt
python bench_measures.py --measures-only --repeats 7 > measures_2t.txt
python bench_measures.py --measures-only --repeats 7 --blas-threads 1 > measures_1t.txt
