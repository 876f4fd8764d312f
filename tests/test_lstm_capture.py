"""Recurrent capture (issue #14 §2.6): every sequence step's hidden and cell state.

``nc.capture.capture_recurrent`` unrolls the hooked module's own weights; the states must
match what ``nn.LSTM`` itself returns (its output sequence, and its last-step h_n, c_n),
have the right shapes for every layer and step, and the hooks must be gone afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nncompare as nc
from nncompare.capture import capture_recurrent, recurrent_layers
from nncompare.models import StackedLSTM


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_stacked_lstm_states_have_every_step_and_match_the_module():
    torch.manual_seed(0)
    net = StackedLSTM(1, hidden=(6, 5, 4), out_features=3)
    x = torch.randn(23, 1, 11)
    states = capture_recurrent(net, x, batch_size=10)  # three batches
    assert states.layers == ["lstm1", "lstm2", "lstm3"]
    assert states.n_steps == 11
    for name, h in zip(states.layers, (6, 5, 4), strict=True):
        for kind in ("output", "hidden", "cell"):
            assert states[f"{name}:{kind}"].shape == (23, 11, h)
    # the module's own outputs: the hidden sequence and the last-step (h_n, c_n)
    seq = x.transpose(1, 2)
    with torch.no_grad():
        for name in states.layers:
            seq_out, (h_n, c_n) = getattr(net, name)(seq)
            torch.testing.assert_close(states[f"{name}:hidden"], seq_out, atol=1e-6, rtol=0)
            torch.testing.assert_close(states.step(f"{name}:hidden", -1), h_n[0], atol=1e-6, rtol=0)
            torch.testing.assert_close(states.step(f"{name}:cell", -1), c_n[0], atol=1e-6, rtol=0)
            seq = seq_out
    assert states.flat("lstm2:cell").shape == (23 * 11, 5)
    assert _hooks(net) == 0
    assert net.training  # mode restored


def test_multi_layer_time_major_lstm_and_initial_state():
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 4, num_layers=2)  # (T, n, F)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = lstm
            self.h0 = torch.randn(2, 7, 4)
            self.c0 = torch.randn(2, 7, 4)

        def forward(self, x):
            return self.rnn(x.transpose(0, 1), (self.h0, self.c0))[0]

    net = Net()
    x = torch.randn(7, 5, 3)
    states = capture_recurrent(net, x, batch_size=7)
    assert set(states) == {
        "rnn:output",
        "rnn.l0:hidden",
        "rnn.l0:cell",
        "rnn.l1:hidden",
        "rnn.l1:cell",
    }
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x.transpose(0, 1), (net.h0, net.c0))
    torch.testing.assert_close(states["rnn:output"], out.transpose(0, 1), atol=1e-6, rtol=0)
    for k in range(2):
        torch.testing.assert_close(states[f"rnn.l{k}:cell"][:, -1], c_n[k], atol=1e-6, rtol=0)
        torch.testing.assert_close(states[f"rnn.l{k}:hidden"][:, -1], h_n[k], atol=1e-6, rtol=0)
    assert _hooks(net) == 0


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_and_rnn_hidden_states(kind):
    torch.manual_seed(2)
    mod = nn.GRU(2, 3, batch_first=True) if kind == "gru" else nn.RNN(2, 3, batch_first=True)
    x = torch.randn(4, 6, 2)
    states = capture_recurrent(_Wrap(mod), x)
    assert "rec:cell" not in states and states["rec:hidden"].shape == (4, 6, 3)
    with torch.no_grad():
        out, _ = mod(x)
    torch.testing.assert_close(states["rec:hidden"], out, atol=1e-6, rtol=0)


class _Wrap(nn.Module):
    def __init__(self, mod):
        super().__init__()
        self.rec = mod

    def forward(self, x):
        return self.rec(x)[0]


def test_hooks_removed_after_an_error():
    net = StackedLSTM(1, hidden=(4,))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, T\) or \(N, T\)"):
        capture_recurrent(net, torch.randn(5, 2, 3, 4))
    assert _hooks(net) == 0


def test_capture_recurrent_refuses_what_it_cannot_unroll():
    net = StackedLSTM(1, hidden=(4,))
    with pytest.raises(ValueError, match=r"layer .fc. is a Linear, not an nn\.LSTM"):
        capture_recurrent(net, torch.randn(3, 1, 5), ["fc"])
    with pytest.raises(KeyError, match="No layer named 'lstm9'"):
        capture_recurrent(net, torch.randn(3, 1, 5), ["lstm9"])
    with pytest.raises(ValueError, match=r"has no nn\.LSTM, nn\.GRU or nn\.RNN module"):
        capture_recurrent(nn.Linear(2, 2), torch.randn(3, 2))
    bi = _Wrap(nn.LSTM(2, 3, batch_first=True, bidirectional=True))
    with pytest.raises(NotImplementedError, match="bidirectional or has proj_size"):
        capture_recurrent(bi, torch.randn(3, 4, 2))
    assert recurrent_layers(net) == ["lstm1"]


def test_stacked_lstm_reads_mnist1d_as_a_sequence():
    pytest.importorskip("mnist1d")
    x = nc.data.load_mnist1d("test").x[:30]
    assert x.shape == (30, 1, 40)
    net = StackedLSTM(1, hidden=(8, 6))
    assert net(x).shape == (30, 10)
    states = capture_recurrent(net, x)
    assert states.n_steps == 40  # the 40 samples of each signal are the steps
    assert states["lstm2:cell"].shape == (30, 40, 6)


# ---------------------------------------------------------------- dynamics of the states
def _checkpoints(n: int = 3) -> dict[int, StackedLSTM]:
    torch.manual_seed(5)
    net = StackedLSTM(1, hidden=(5, 4))
    out = {}
    for k in range(n):
        copy = StackedLSTM(1, hidden=(5, 4))
        copy.load_state_dict(net.state_dict())
        out[10 * k] = copy
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return out


def test_convergence_to_final_is_zero_at_the_final_checkpoint():
    from nncompare.analyses.recurrent import convergence_summary, convergence_to_final

    ckpts = _checkpoints()
    x = torch.randn(300, 1, 8, generator=torch.Generator().manual_seed(0))
    df = convergence_to_final(ckpts, x, measures=("pwcca", "cca", "cosine"))
    assert len(df) == 3 * 2 * 3  # checkpoints x layers x measures
    assert set(df["layer"]) == {"lstm1", "lstm2"}
    last = df[df["checkpoint"] == 20]
    np.testing.assert_allclose(last["distance"], 0.0, atol=1e-8)
    first = df[(df["checkpoint"] == 0) & (df["measure"] == "cca")]
    assert (first["distance"] > 1e-3).all()
    assert df["error"].isna().all()
    summary = convergence_summary(df, threshold=0.05)
    assert set(summary.columns) == {
        "layer",
        "depth",
        "measure",
        "mean_distance",
        "converged_at",
        "converged_checkpoint",
    }
    assert (summary["converged_at"] <= 2).all()
    all_steps = convergence_to_final(ckpts, x, step="all", state="cell", measures=("cca",))
    assert len(all_steps) == 6
    with pytest.raises(ValueError, match="at least 2 checkpoints"):
        convergence_to_final({0: ckpts[0]}, x)
    with pytest.raises(KeyError, match="no recurrent state 'lstm1:memory'"):
        convergence_to_final(ckpts, x, state="memory")


def test_timestep_similarity_is_symmetric_with_unit_diagonal():
    from nncompare.analyses.recurrent import timestep_similarity

    net = _checkpoints(1)[0]
    x = torch.randn(400, 1, 6, generator=torch.Generator().manual_seed(1))
    states = capture_recurrent(net, x)
    df = timestep_similarity(states, "lstm2", steps=[1, 3, 5])
    assert len(df) == 9 * 3
    for _, g in df.groupby("measure"):
        grid = g.pivot_table("value", "step_a", "step_b")
        np.testing.assert_allclose(grid.to_numpy(), grid.to_numpy().T)
        np.testing.assert_allclose(np.diag(grid.to_numpy()), 1.0, atol=1e-8)
    with pytest.raises(ValueError, match=r"steps \[6\] are out of range for 6"):
        timestep_similarity(states, "lstm2", steps=[6])
