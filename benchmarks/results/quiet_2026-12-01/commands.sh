#!/bin/bash
cd /work/main
P=.venv/bin/python
uptime > ./load_start.txt
( time $P benchmarks/bench_measures.py --measures-only --blas-threads 1 --repeats 7 ) > measures_1t.txt 2>&1
( time $P benchmarks/bench_measures.py --measures-only --repeats 7 ) > measures_2t.txt 2>&1
( time env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $P benchmarks/bench_conv.py --vs-google ) > conv_1t.txt 2>&1
( time $P benchmarks/bench_conv.py --vs-google ) > conv_2t.txt 2>&1
( time env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $P benchmarks/bench_pairwise.py --grid ) > grid_1t.txt 2>&1
( time $P benchmarks/bench_pairwise.py --grid ) > grid_2t.txt 2>&1
( time $P benchmarks/stitching_costs.py --sizes 2500 10000 --threads 2 ) > stitch.txt 2>&1
uptime > ./load_end.txt
echo done > ./DONE
