"""Callbacks on a toy model: when they act, and that saved state lets a fresh callback continue identically."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from ferkit.training.callbacks import (
    BestCheckpoint,
    CosineSchedule,
    EarlyStopping,
    FreezeBody,
    LoopState,
    OneCycle,
    ReduceLROnPlateau,
)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.features(x))


def _state(lr: float = 0.1) -> LoopState:
    model = Toy()
    return LoopState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr), epochs=100)


def _through_disk(state: dict) -> dict:
    """Save and reload like last.pt does (weights_only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _run_epochs(cb, state: LoopState, values, monitor: str = "m", start: int = 1) -> int | None:
    """Feed ``values`` as successive epochs' metric; return the epoch at which a stop was asked for."""
    for epoch, value in enumerate(values, start=start):
        state.epoch = epoch
        cb.on_epoch_start(state)
        cb.on_epoch_end(state, {monitor: value})
        if state.stop_reason:
            return epoch
    return None


@pytest.mark.parametrize(
    ("values", "mode", "patience", "min_delta", "stop_epoch", "best_epoch"),
    [
        ([0.1, 0.2, 0.3, 0.25, 0.2, 0.4], "max", 2, 0.0, 5, 3),
        ([1.0, 0.9, 0.95, 0.8, 0.85, 0.9], "min", 2, 0.0, 6, 4),
        ([0.1, 0.2, 0.3, 0.4, 0.5], "max", 1, 0.0, None, 5),
        ([0.5, 0.4, 0.3, 0.2], "max", 3, 0.0, 4, 1),
        ([0.5, 0.52, 0.53], "max", 2, 0.05, 3, 1),  # gains below min_delta do not count
        ([1.0, 1.0, 1.0], "min", 1, 0.0, 2, 1),  # equal is not better
    ],
)
def test_early_stopping_epoch(values, mode, patience, min_delta, stop_epoch, best_epoch):
    state = _state()
    cb = EarlyStopping(monitor="m", mode=mode, patience=patience, min_delta=min_delta)
    assert _run_epochs(cb, state, values) == stop_epoch
    assert cb.best_epoch == best_epoch
    if stop_epoch is not None:
        reason = state.stop_reason
        assert f"epoch {stop_epoch}" in reason and "m has not improved" in reason
        assert f"for {patience} epochs" in reason and f"at epoch {best_epoch}" in reason


def test_early_stopping_rejects_bad_mode_and_missing_metric():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(KeyError, match="val_acc"):
        EarlyStopping().on_epoch_end(_state(), {"val_loss": 1.0})


@pytest.mark.parametrize(("values", "mode", "saved"), [
    ([0.1, 0.3, 0.2, 0.3, 0.5], "max", [1, 2, 5]),
    ([2.0, 1.0, 1.5, 0.5, 0.5], "min", [1, 2, 4]),
])
def test_best_checkpoint_saves_only_on_improvement(values, mode, saved):
    calls: list[int] = []
    cb = BestCheckpoint(lambda s: calls.append(s.epoch), monitor="m", mode=mode)
    _run_epochs(cb, _state(), values)
    assert calls == saved
    assert cb.best_epoch == saved[-1]


def test_reduce_lr_on_plateau_lowers_after_patience():
    state = _state(lr=0.1)
    cb = ReduceLROnPlateau(state.optimizer, monitor="m", mode="max", factor=0.5, patience=2)
    lrs = []
    for epoch, value in enumerate([0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], start=1):
        state.epoch = epoch
        cb.on_epoch_end(state, {"m": value})
        lrs.append(state.optimizer.param_groups[0]["lr"])
    # best at epoch 2; epochs 3 and 4 are bad -> still 0.1; the third bad epoch (5) halves it
    assert lrs[:4] == [0.1] * 4
    assert lrs[4:7] == pytest.approx([0.05] * 3)  # the count of bad epochs restarts after a reduction
    assert lrs[7] == pytest.approx(0.025)


def test_one_cycle_warms_up_to_max_lr_then_anneals():
    state = _state()
    cb = OneCycle(state.optimizer, max_lr=0.1, total_steps=20, pct_start=0.3)
    lrs = [state.optimizer.param_groups[0]["lr"]]
    for _ in range(25):  # steps past the end are ignored, not an error
        state.optimizer.step()
        cb.on_batch_end(state)
        lrs.append(state.optimizer.param_groups[0]["lr"])
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(0.1)
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert 3 <= peak <= 7
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert lrs[-1] < 1e-5


def test_freeze_body_freezes_then_unfreezes():
    state = _state()
    cb = FreezeBody(epochs=2)
    trainable = []
    for epoch in (1, 2, 3, 4):
        state.epoch = epoch
        cb.on_epoch_start(state)
        body = [p.requires_grad for p in state.model.features.parameters()]
        head = [p.requires_grad for p in state.model.head.parameters()]
        assert all(head)
        assert len(set(body)) == 1
        trainable.append(body[0])
    assert trainable == [False, False, True, True]


def test_a_frozen_body_can_keep_its_batch_norm_statistics():
    state = _state()
    bn = state.model.features[1]
    x = torch.randn(16, 4) * 3 + 1
    cb = FreezeBody(epochs=1, batch_norm="eval")
    state.epoch = 1
    cb.on_epoch_start(state)
    state.model.train()  # as the loop does after the callbacks
    before = bn.running_mean.clone()
    held = state.model(x)
    assert torch.equal(bn.running_mean, before)  # running statistics untouched in train mode ...
    assert torch.allclose(held, state.model.eval()(x))  # ... and used: the train-mode output is the eval-mode one
    state.epoch = 2
    cb.on_epoch_start(state)  # unfrozen: batch norm trains again
    state.model.train()
    moved = state.model(x)
    assert not torch.equal(bn.running_mean, before) and not torch.allclose(moved, held)
    assert all(p.requires_grad for p in state.model.parameters())


def test_fastai_s_frozen_body_keeps_batch_norm_live():
    state = _state()
    bn = state.model.features[1]
    FreezeBody(epochs=1).on_epoch_start(state)
    state.model.train()
    before = bn.running_mean.clone()
    state.model(torch.randn(16, 4) + 2)
    assert not torch.equal(bn.running_mean, before)


def _lr_trace(cb, state: LoopState, values, start: int) -> list[float]:
    out = []
    for epoch, value in enumerate(values, start=start):
        state.epoch = epoch
        cb.on_epoch_start(state)
        for _ in range(3):
            state.optimizer.step()
            cb.on_batch_end(state)
        cb.on_epoch_end(state, {"m": value})
        out.append(state.optimizer.param_groups[0]["lr"])
    return out


FACTORIES = {
    "early_stopping": lambda s: EarlyStopping(monitor="m", mode="max", patience=3),
    "best": lambda s: BestCheckpoint(lambda st: st.extra.setdefault("saved", []).append(st.epoch), monitor="m"),
    "plateau": lambda s: ReduceLROnPlateau(s.optimizer, monitor="m", mode="max", factor=0.5, patience=1),
    "onecycle": lambda s: OneCycle(s.optimizer, max_lr=0.2, total_steps=30, pct_start=0.3),
    "cosine": lambda s: CosineSchedule(s.optimizer, epochs=10, min_lr=0.001),
    "freeze": lambda s: FreezeBody(epochs=3),
}
VALUES = [0.1, 0.4, 0.3, 0.35, 0.3, 0.2, 0.38, 0.45, 0.2, 0.1]  # best before the split at epoch 4


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_round_trip_continues_identically(name):
    # uninterrupted
    ref_state = _state()
    ref = FACTORIES[name](ref_state)
    ref_lrs = _lr_trace(ref, ref_state, VALUES, 1)
    # interrupted after 4 epochs, state saved through torch.save/load, a fresh callback continues
    first_state = _state()
    first = FACTORIES[name](first_state)
    lrs = _lr_trace(first, first_state, VALUES[:4], 1)
    saved_cb, saved_opt = _through_disk(first.state_dict()), _through_disk(first_state.optimizer.state_dict())
    state = _state()  # the order of training/run.py: build callbacks, then load optimizer and callback states
    state.extra = first_state.extra
    fresh = FACTORIES[name](state)
    state.optimizer.load_state_dict(saved_opt)
    fresh.load_state_dict(saved_cb)
    lrs += _lr_trace(fresh, state, VALUES[4:], 5)
    assert lrs == pytest.approx(ref_lrs, rel=1e-12)
    assert state.stop_reason == ref_state.stop_reason
    assert state.extra == ref_state.extra
    assert fresh.state_dict() == ref.state_dict()
    trainable = [p.requires_grad for p in state.model.parameters()]
    assert trainable == [p.requires_grad for p in ref_state.model.parameters()]
