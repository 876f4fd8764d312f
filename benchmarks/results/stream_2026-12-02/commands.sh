#!/usr/bin/env bash
# what produced the files beside this one, in the order they ran (from benchmarks/, nothing
# else running; 2026-12-02 ~18:45-18:55 UTC, 2-core AMD EPYC VM on which OpenBLAS picks
# its Haswell kernels). "old" is commit 5ff6ce9 (a worktree at /tmp/oldtree), "new" the
# run-of-batches change.
for i in 1 2; do
  PYTHONPATH=/tmp/oldtree/src python bench_dft_stream.py --repeats 3 > old_5ff6ce9_run$i.txt
  python bench_dft_stream.py --repeats 3 > new_run$i.txt
done
python bench_conv.py --vs-google > conv_2t.txt
