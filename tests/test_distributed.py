"""Data-parallel training under torchrun (2 CPU processes, gloo): sharding, 1-vs-2-process parity, killed-run resume.

The multi-process tests start the real ``torchrun`` on ``python -m ferkit.cli train`` (or on this file, for the
run that dies), so they check what a user runs. Run as a script, this file is that dying run's entry point.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed

from ferkit.config import load_config, to_toml
from ferkit.errors import FerkitError
from ferkit.models import load_model
from ferkit.training import distributed
from ferkit.training.distributed import SINGLE, DistEnv
from ferkit.training.loop import batches
from ferkit.training.run import train
from synthetic import write_faces_csv

pytestmark = pytest.mark.slow  # spawns torchrun processes

# 1 process vs 2 on the same global batch (SGD): per-epoch losses agree to LOSS_RTOL (measured: <= 1e-7) and
# final weights to WEIGHT_TOL of each tensor's largest magnitude (measured: <= 5e-7).
LOSS_RTOL = 1e-5
WEIGHT_TOL = 1e-5
KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")

needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- helpers that need no second process ----------------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3])
def test_batches_give_each_rank_a_contiguous_share_of_the_global_batch(world):
    single = list(batches(50, 12, generator=torch.Generator().manual_seed(4), shuffle=True, drop_last=True))
    shards = [list(batches(50, 12, generator=torch.Generator().manual_seed(4), shuffle=True, drop_last=True,
                           dist=DistEnv(rank, world))) for rank in range(world)]
    assert len(single) == 4 and all(len(s) == 4 for s in shards)
    for step, whole in enumerate(single):
        parts = [shards[rank][step] for rank in range(world)]
        assert torch.equal(torch.cat(parts), whole)  # the same global batch, split in rank order
        assert {len(p) for p in parts} == {12 // world}


def test_a_single_process_env_changes_nothing(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.env_from_torchrun() is SINGLE
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.env_from_torchrun() is SINGLE
    assert SINGLE.sum(1.5, 3, 7) == (1.5, 3, 7)
    rows = torch.arange(5)
    assert SINGLE.shard(rows) is rows and SINGLE.broadcast(rows) is rows
    assert SINGLE.on_main(lambda: "ran") == "ran" and SINGLE.is_main and not SINGLE.enabled
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_from_torchrun() == DistEnv(rank=3, world_size=4, local_rank=1)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(FerkitError, match="RANK"):
        distributed.env_from_torchrun()


def test_the_global_batch_must_split_evenly():
    distributed.check_batch(64, 1000, DistEnv(0, 4))
    distributed.check_batch(63, 1000, SINGLE)
    with pytest.raises(FerkitError, match="global batch.*divisible.*4"):
        distributed.check_batch(63, 1000, DistEnv(1, 4))
    with pytest.raises(FerkitError, match="3 training images"):
        distributed.check_batch(4, 3, DistEnv(0, 4))


def test_rank_seeds_differ_by_rank_and_epoch_and_repeat():
    seeds = {(epoch, rank): distributed.rank_seed(7, epoch, rank) for epoch in (1, 2) for rank in (0, 1)}
    assert len(set(seeds.values())) == 4
    assert distributed.rank_seed(7, 2, 1) == seeds[2, 1] and distributed.rank_seed(8, 2, 1) != seeds[2, 1]


class _Cycle:
    """An object in a reference cycle, as a run is (its callbacks hold its bound methods)."""

    def __init__(self):
        self.me = self


@pytest.fixture
def fake_group(monkeypatch):
    """``session()`` as rank 0 of 2, with the process-group calls recorded instead of made."""
    calls = []
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: calls.append("init"))
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    was_enabled = gc.isenabled()
    gc.disable()  # only session() may collect the cycle
    yield calls
    if was_enabled:
        gc.enable()


@pytest.mark.parametrize("fails", [False, True])
def test_the_block_s_cycles_are_freed_before_the_group_is_destroyed(fake_group, monkeypatch, fails):
    held = {}

    def destroy():
        fake_group.append("destroy, cycle freed" if held["ref"]() is None else "destroy, cycle alive")

    monkeypatch.setattr(distributed.dist, "destroy_process_group", destroy)
    with contextlib.suppress(KeyError), distributed.session() as env:
        assert env == DistEnv(0, 2, 0)
        held["ref"] = weakref.ref(_Cycle())
        if fails:
            raise KeyError("a run that failed")
    assert fake_group == ["init"] + ([] if fails else ["barrier"]) + ["destroy, cycle freed"]


# --- real two-process runs --------------------------------------------------------------------------------------


def _write_csv(path: Path) -> Path:
    """48x48 faces; class k: brightness 30k + 25 with a bright band at row 6k, plus noise; 10 per class and split."""
    rng = np.random.default_rng(0)
    rows = []
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for k in np.repeat(np.arange(7), 10):
            img = np.full((48, 48), 30.0 * k + 25) + rng.normal(0, 12, (48, 48))
            img[6 * k:6 * k + 5] += 60
            rows.append((k, np.clip(img, 0, 255).astype(np.uint8), usage))
    return write_faces_csv(path, rows)


def _config_file(root: Path, name: str, *overrides: str) -> Path:
    config = load_config(None, [
        f"name={name}", f"out_dir={root}", f"data.path={_write_csv(root / 'faces.csv')}", "model.input_size=24",
        "train.batch_size=16", "train.lr=0.003", "train.bf16=false", "train.scheduler=onecycle",
        "train.threads=1", "train.eval_batch_size=32", *overrides,
    ])
    path = root / f"{name}.toml"
    path.write_text(to_toml(config))
    return path


def _torchrun(*args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


def _ferkit_train(config: Path, *extra: str) -> None:
    done = _torchrun("-m", "ferkit.cli", "train", config, *extra)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _last(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)


@pytest.fixture(scope="module", params=["train.sam_rho=0", "train.sam_rho=0.05"])
def parity_runs(tmp_path_factory, request):
    """The same run (no batch norm, no dropout, no augmentation) by 1 process and by 2 under torchrun, with
    ordinary steps and with sharpness-aware ones (whose shift must follow the gradient averaged over the ranks).

    SGD, because its steps scale with the gradient (Adam's hardly do): a sum in place of the mean over
    ranks would show. Adam gives the same losses too, but magnifies rounding in near-zero gradients.
    """
    root = tmp_path_factory.mktemp("parity")
    path = _config_file(root, "two", "model.name=cae_cnn", "model.args={dropout = 0.0, input_size = 24}",
                        "train.epochs=3", "train.optimizer=sgd", "train.lr=0.2", request.param)
    _ferkit_train(path)
    single = train(load_config(path, ["name=one"]))
    return root / "two", single


@pytest.mark.slow
@needs_gloo
def test_two_processes_match_one_process_with_the_same_global_batch(parity_runs):
    run_dir, single = parity_runs
    last = _last(run_dir)
    assert last["world_size"] == 2 and last["epoch"] == 3
    assert [row["epoch"] for row in last["history"]] == [1, 2, 3]
    for two, one in zip(last["history"], single.history, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=LOSS_RTOL)
        assert two["val_loss"] == pytest.approx(one["val_loss"], rel=LOSS_RTOL)
        assert two["train_acc"] == pytest.approx(one["train_acc"], abs=1e-6)  # counts summed over both ranks
        assert two["val_acc"] == pytest.approx(one["val_acc"], abs=1e-6)
        assert two["lr"] == pytest.approx(one["lr"], rel=1e-12)  # one-cycle stepped per global batch
    assert single.history[-1]["train_loss"] < single.history[0]["train_loss"]
    got = last["model_checkpoint"]["state_dict"]
    want = _last(single.run_dir)["model_checkpoint"]["state_dict"]
    assert got.keys() == want.keys()  # plain names: no DistributedDataParallel "module." prefix
    for key in want:
        assert (got[key] - want[key]).abs().max() <= WEIGHT_TOL * want[key].abs().max(), key


@pytest.mark.slow
@needs_gloo
def test_rank_zero_writes_the_run_files(parity_runs):
    run_dir, single = parity_runs
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "config.toml", "metrics.json"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp"))
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    model, info = load_model(run_dir / "best.pt")  # loads in a single process, as any checkpoint does
    assert info.name == "cae_cnn" and model(torch.zeros(2, 1, 24, 24)).shape == (2, 7)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_images"] == 70 and 0 <= metrics["test_acc"] <= 1
    assert metrics["best_epoch"] == single.test_metrics["best_epoch"]


@pytest.mark.slow
@needs_gloo
def test_a_killed_two_process_run_resumes_exactly(tmp_path):
    """Batch norm, dropout and augmentation on: per-rank random draws must repeat after the resume."""
    overrides = ("model.name=ferkit_cnn_small", "augment.shift=0.1", "augment.flip=0.5", "train.epochs=3",
                 "data.test_split=")  # no test report: quicker
    reference = _config_file(tmp_path, "reference", *overrides)
    _ferkit_train(reference)
    killed = _config_file(tmp_path, "killed", *overrides)
    died = _torchrun(__file__, killed, "3")  # rank 0 is SIGKILLed as epoch 3 starts training
    assert died.returncode != 0
    assert "SIGKILL" in died.stdout + died.stderr
    assert _last(tmp_path / "killed")["epoch"] == 2
    _ferkit_train(killed, "--resume")
    got, want = _last(tmp_path / "killed"), _last(tmp_path / "reference")
    assert got["epoch"] == want["epoch"] == 3
    assert [[row[k] for k in KEYS] for row in got["history"]] == [[row[k] for k in KEYS] for row in want["history"]]
    for key, value in want["model_checkpoint"]["state_dict"].items():
        assert torch.equal(got["model_checkpoint"]["state_dict"][key], value), key
    assert got["optimizer"]["state"][0]["step"] == want["optimizer"]["state"][0]["step"]


def _die_during_epoch(config: str, epoch: str) -> int:
    """``ferkit train CONFIG`` in which rank 0 kills itself (SIGKILL) when epoch ``epoch`` starts training."""
    from ferkit import cli
    from ferkit.training import tasks as tasks_module

    real = tasks_module.train_one_epoch

    def dying(state, *args, **kwargs):
        if state.epoch == int(epoch) and os.environ["RANK"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(state, *args, **kwargs)

    tasks_module.train_one_epoch = dying
    return cli.main(["train", config])


if __name__ == "__main__":
    sys.exit(_die_during_epoch(*sys.argv[1:]))
