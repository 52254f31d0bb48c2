from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pvdm.diffusion.ema import EMA


def set_weight(model: nn.Linear, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)


def test_ema_update_math_without_warmup() -> None:
    model = nn.Linear(1, 1)
    set_weight(model, 2.0)
    ema = EMA(model, decay=0.9, warmup=False)
    set_weight(model, 4.0)
    ema.update(model)  # 0.9 * 2 + 0.1 * 4 = 2.2
    set_weight(model, -1.0)
    ema.update(model)  # 0.9 * 2.2 + 0.1 * -1 = 1.88
    assert ema.shadow["weight"].item() == pytest.approx(1.88)
    assert ema.shadow["bias"].item() == pytest.approx(1.88)
    assert ema.num_updates == 2


def test_ema_warmup_decay_is_min_of_decay_and_one_plus_n_over_ten_plus_n() -> None:
    model = nn.Linear(1, 1)
    set_weight(model, 0.0)
    ema = EMA(model, decay=0.9999, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)  # n = 0: 1 / 10
    set_weight(model, 10.0)
    ema.update(model)  # 0.1 * 0 + 0.9 * 10 = 9
    assert ema.shadow["weight"].item() == pytest.approx(9.0)
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.9999


def test_ema_tracks_buffers_and_copies_integer_counters() -> None:
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.5, warmup=False)
    model.train()
    model(torch.tensor([[1.0, 3.0], [3.0, 5.0]]))  # running_mean: 0.9 * 0 + 0.1 * [2, 4] = [0.2, 0.4]
    ema.update(model)
    assert ema.shadow["running_mean"].tolist() == pytest.approx([0.1, 0.2])
    assert ema.shadow["num_batches_tracked"].item() == 1


def test_copy_to_and_state_dict_round_trip() -> None:
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.5, warmup=False)
    start = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    sampler_copy = ema.copy_to(copy.deepcopy(model))
    torch.testing.assert_close(sampler_copy.weight, start["weight"] + 0.5)
    torch.testing.assert_close(model.weight, start["weight"] + 1.0)  # the trained model is untouched

    restored = EMA(nn.Linear(2, 2), decay=0.1)
    restored.load_state_dict(ema.state_dict())
    assert (restored.decay, restored.warmup, restored.num_updates) == (0.5, False, 1)
    torch.testing.assert_close(restored.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(KeyError, match="missing"):
        EMA(nn.Linear(2, 2, bias=False)).load_state_dict({**ema.state_dict(), "shadow": {}})
