#!/usr/bin/env bash
# what produced the files beside this one, in the order they ran (nothing else running;
# 2026-12-02 ~23:50 UTC, 2-core AMD EPYC VM on which OpenBLAS picks its Haswell kernels).
# Memory touched once first (see benchmarks/README.md, "How to run"). Each tree runs its
# own bench_dft_stream.py: "old" is commit 34f0a4e, "mid" 738001c (SpectralMoments.dft_cca
# and the periodic plan), "new" the 2 MB spectra blocks on top; worktrees under /tmp.
PY=/work/main/.venv/bin/python
$PY -c "import numpy as np; np.ones(16 * 2**30 // 8)"
for i in 1 2; do
  (cd /tmp/old34/benchmarks && PYTHONPATH=/tmp/old34/src $PY bench_dft_stream.py --repeats 3) > old_34f0a4e_run$i.txt
  (cd /tmp/mid73/benchmarks && PYTHONPATH=/tmp/mid73/src $PY bench_dft_stream.py --repeats 3) > mid_738001c_run$i.txt
  (cd /work/main/benchmarks && $PY bench_dft_stream.py --repeats 3) > new_run$i.txt
done
(cd /work/main/benchmarks && $PY bench_conv.py --vs-google) > conv_2t_run1.txt
(cd /work/main/benchmarks && $PY bench_conv.py --vs-google) > conv_2t_run2.txt
(cd /work/main/benchmarks && $PY bench_dft_stages.py --repeats 3) > stages_2t.txt
# 2026-12-03 ~07:07 UTC, memory touched again first: torch tensors on the host CPU,
# before (device_cpu.txt, tree 905041f) and after (device_cpu_after_9009870.txt) the
# torch DFT change
(cd /work/main/benchmarks && $PY bench_device.py --device cpu --repeats 3) > device_cpu.txt
(cd /work/main/benchmarks && $PY bench_device.py --device cpu --repeats 3) > device_cpu_after_9009870.txt
