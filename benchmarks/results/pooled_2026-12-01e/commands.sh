#!/usr/bin/env bash
# what produced the files beside this one (run from benchmarks/, nothing else running)
python bench_measures.py --measures-only --repeats 7 > measures_2t.txt
python bench_measures.py --measures-only --repeats 7 --blas-threads 1 > measures_1t.txt
OPENBLAS_THREAD_TIMEOUT=4 python bench_measures.py --measures-only --repeats 7 > measures_2t_timeout4.txt
for i in 1 2; do
  python bench_measures.py --measures-only --repeats 5 --measures cka_debiased,cca,svcca,pwcca > measures_2t_ab_default_$i.txt
  OPENBLAS_THREAD_TIMEOUT=20 python bench_measures.py --measures-only --repeats 5 --measures cka_debiased,cca,svcca,pwcca > measures_2t_ab_20_$i.txt
done
python bench_blas_libraries.py > blas_libraries_default.txt
OPENBLAS_THREAD_TIMEOUT=20 python bench_blas_libraries.py > blas_libraries_timeout20.txt
