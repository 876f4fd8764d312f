"""Tests for nncompare.training: determinism, checkpoints, accuracy, mode handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nncompare.workbench.data import load_digits
from nncompare.workbench.models import MLP, SmallCNN
from nncompare.workbench.training import TrainResult, evaluate, save_state_dict, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits("train"), load_digits("test")


def fresh_cnn(init_seed: int = 0) -> SmallCNN:
    torch.manual_seed(init_seed)
    return SmallCNN()


def test_same_seed_gives_identical_weights(digits):
    train_set, _ = digits
    a, b, c = fresh_cnn(), fresh_cnn(), fresh_cnn()
    train(a, train_set, epochs=2, lr=0.05, seed=7)
    train(b, train_set, epochs=2, lr=0.05, seed=7)
    train(c, train_set, epochs=2, lr=0.05, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_callers_random_state_is_untouched(digits):
    train_set, _ = digits
    net = fresh_cnn()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    train(net, train_set, epochs=1, lr=0.05, seed=0)
    assert torch.equal(torch.get_rng_state(), before)


def test_small_cnn_learns_digits(digits):
    train_set, test_set = digits
    net = fresh_cnn()
    result = train(
        net, train_set, epochs=10, lr=0.1, seed=0, lr_schedule="cosine", eval_data=test_set
    )
    assert isinstance(result, TrainResult)
    assert len(result.history) == 10 and result.steps == 10 * 22
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.final_eval_accuracy == pytest.approx(evaluate(net, test_set))
    assert result.final_accuracy > 0.90
    assert result.final_train_accuracy > 0.90
    assert result.history[-1].lr < 0.001  # cosine annealed to almost zero


def test_checkpoints_are_plain_state_dicts(tmp_path, digits):
    train_set, _ = digits
    net = fresh_cnn()
    result = train(
        net,
        train_set,
        epochs=3,
        lr=0.05,
        seed=0,
        checkpoint_dir=tmp_path / "ck",
        checkpoint_every=[0, 2],
    )
    names = [p.name for p in result.checkpoints]
    assert names == ["epoch0000.pt", "epoch0002.pt", "epoch0003.pt"]
    assert result.checkpoint_steps == [0, 44, 66]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == names  # no temp files left
    final = torch.load(result.checkpoints[-1], map_location="cpu", weights_only=True)
    assert set(final) == set(net.state_dict())
    assert all(torch.equal(final[k], v) for k, v in net.state_dict().items())
    first = torch.load(result.checkpoints[0], map_location="cpu", weights_only=True)
    assert not torch.equal(first["conv1.weight"], final["conv1.weight"])
    fresh = fresh_cnn()
    assert torch.equal(first["conv1.weight"], fresh.conv1.weight)


def test_step_checkpoints(tmp_path, digits):
    train_set, _ = digits
    result = train(
        MLP(64, (16,), 10),
        train_set,
        epochs=1,
        lr=0.05,
        seed=0,
        checkpoint_dir=tmp_path,
        checkpoint_every=10,
        checkpoint_unit="step",
        batch_size=128,
    )
    assert [p.name for p in result.checkpoints] == ["step0000010.pt", "step0000011.pt"]
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        train(
            MLP(64),
            train_set,
            epochs=1,
            lr=0.1,
            seed=0,
            checkpoint_dir=tmp_path,
            checkpoint_every=[5],
        )


def test_modes_are_restored(digits):
    train_set, test_set = digits
    net = fresh_cnn().eval()
    train(net, train_set, epochs=1, lr=0.05, seed=0)
    assert not any(m.training for m in net.modules())
    net.train()
    net.bn1.eval()  # a deliberately frozen submodule keeps its flag
    evaluate(net, test_set)
    train(net, train_set, epochs=1, lr=0.05, seed=0)
    assert net.training and not net.bn1.training


def test_accepts_pairs_numpy_and_torch_datasets(digits):
    train_set, test_set = digits
    x, y = train_set.x.numpy(), train_set.y.numpy().astype(np.int32)
    net = MLP(64, (32,), 10)
    result = train(net, (x, y), epochs=2, lr=3e-3, optimizer="adam", seed=0, batch_size=256)
    assert result.final_eval_accuracy is None
    assert result.final_accuracy == result.final_train_accuracy > 0.5
    tensors = torch.utils.data.TensorDataset(test_set.x, test_set.y)
    assert evaluate(net, tensors) == pytest.approx(evaluate(net, test_set))
    train(net, tensors, epochs=1, lr=1e-3, optimizer="adam", seed=0)


def test_helpful_errors(tmp_path, digits):
    train_set, _ = digits
    net = MLP(64)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(net, train_set, epochs=1, lr=0.1, seed=0, checkpoint_every=1)
    with pytest.raises(ValueError, match="optimizer must be"):
        train(net, train_set, epochs=1, lr=0.1, seed=0, optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no labels"):
        train(net, (train_set.x, None), epochs=1, lr=0.1, seed=0)
    with pytest.raises(TypeError, match="floating dtype"):
        train(
            net, (torch.zeros(4, 64, dtype=torch.uint8), torch.zeros(4)), epochs=1, lr=0.1, seed=0
        )
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train(net, train_set, epochs=0, lr=0.1, seed=0)
    bad = train_set.x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="Lower the learning rate"):
        train(net, (bad, train_set.y), epochs=1, lr=0.1, seed=0, batch_size=2000)


def test_save_state_dict_is_atomic_and_loadable(tmp_path):
    net = nn.Linear(3, 2)
    path = save_state_dict(net.state_dict(), tmp_path / "w.pt")
    save_state_dict(net.state_dict(), path)  # overwriting works
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["weight"], net.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_dropout_is_seeded_too(digits):
    train_set, _ = digits

    def net() -> nn.Module:
        torch.manual_seed(3)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10))

    a, b = net(), net()
    train(a, train_set, epochs=1, lr=0.05, seed=5)
    train(b, train_set, epochs=1, lr=0.05, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
