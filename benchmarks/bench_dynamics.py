"""Learning dynamics over 10 checkpoints against the forward passes alone (issue #13).

For a CNN and its 10 checkpoints (random weights here: the cost does not depend on the
values), times

* ``forward``: the 10 networks run over the data, nothing recorded (``torch.no_grad``);
* ``dynamics``: :func:`nncompare.analyses.learning_dynamics` (SVCCA, default layers: every
  layer at each checkpoint against every layer of the last), i.e. the same forward passes
  plus the hooks, the streaming moments and the layer-pair measures;

and prints the ratio, with the load average (the machine is shared: compare runs made at
the same load). Writes benchmarks/results/svcca/bench_dynamics.json.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dynamics.py``
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "svcca"
N_CHECKPOINTS = 10


def _case(name: str, make: object, x: torch.Tensor, repeats: int = 2) -> dict:
    import nncompare as nc

    torch.manual_seed(0)
    states = []
    for _ in range(N_CHECKPOINTS):
        states.append({k: v.clone() for k, v in make().state_dict().items()})
    net = make()
    nets = []
    for s in states:
        m = make()
        m.load_state_dict(s)
        nets.append(m.eval())
    fwd, dyn = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            for m in nets:
                for i in range(0, len(x), 256):
                    m(x[i : i + 256])
        fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        df = nc.analyses.learning_dynamics(net, states, x, measure="svcca")
        dyn.append(time.perf_counter() - t0)
    n_layers = len(df.attrs["layers"])
    row = {
        "case": name,
        "n_samples": len(x),
        "checkpoints": N_CHECKPOINTS,
        "layers": n_layers,
        "pairs": N_CHECKPOINTS * n_layers * n_layers,
        "forward_s": round(min(fwd), 3),
        "dynamics_s": round(min(dyn), 3),
        "ratio": round(min(dyn) / min(fwd), 2),
    }
    print(row)
    return row


def main() -> int:
    torch.set_num_threads(1)
    from nncompare.workbench.models import SmallCNN

    rows = [
        _case("SmallCNN digits 8x8 (16-32)", lambda: SmallCNN(1, 10), torch.randn(2000, 1, 8, 8)),
        _case(
            "SmallCNN CIFAR 32x32 (16-32-64)",
            lambda: SmallCNN(3, 10, widths=(16, 32, 64), image_size=32),
            torch.randn(2000, 3, 32, 32),
        ),
    ]
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"load average {load}")
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"rows": rows, "load_avg": load, "torch_threads": 1}
    (OUT / "bench_dynamics.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
