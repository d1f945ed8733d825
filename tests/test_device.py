"""Device placement (train.device), time-limited calls with exact resume, and the GPU-machine data/result transfer.

No GPU here: CUDA is exercised through what a CPU machine can check: device resolution with a mocked CUDA,
"device" tensors on torch's ``meta`` device (any CPU tensor mixed into their arithmetic raises), and
checkpoints whose tensors are tagged as saved on ``cuda:0``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch.serialization
from torch import nn

from ferkit.config import load_config
from ferkit.data.augment import Augment
from ferkit.data.fer2013 import read_fer2013
from ferkit.data.ferplus import HEADER
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.sources import load_splits
from ferkit.errors import FerkitError
from ferkit.evaluation.predict import predict_proba
from ferkit.models import create_model, load_model
from ferkit.training import device as device_module
from ferkit.training import run as run_module
from ferkit.training.device import resolve_device
from ferkit.training.distributed import DistEnv
from ferkit.training.loop import evaluate
from ferkit.training.run import train
from ferkit.training.seed import rng_state, set_rng_state
from synthetic import tiny_run_config, write_faces_csv

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


@pytest.fixture
def scripts(monkeypatch):
    """The scripts/ folder importable (gpu_pack, gpu_unpack, gpu_collect)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    return lambda name: importlib.import_module(name)


def _faces(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(7), n_per_class)
    images = np.clip(30.0 * labels[:, None, None] + 25 + rng.normal(0, 12, (len(labels), 48, 48)), 0, 255)
    for i, k in enumerate(labels):
        images[i, 6 * k:6 * k + 5] = np.minimum(images[i, 6 * k:6 * k + 5] + 60, 255)
    return images.astype(np.uint8), labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny FER2013 CSV (3 usages) and a FER+ votes CSV aligned with it."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    rows, votes = [], [",".join(HEADER)]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        images, labels = _faces(6, rng)
        rows += [(k, img, usage) for img, k in zip(images, labels)]
        for i in range(len(labels)):
            row = [0] * 10
            row[i % 8] += 7
            row[(i + 3) % 10] += 3
            votes.append(f"{usage},fer{len(votes):07d}.png," + ",".join(map(str, row)))
    write_faces_csv(folder / "fer2013.csv", rows)
    (folder / "fer2013new.csv").write_text("\n".join(votes) + "\n")
    return folder


def _config(root, name: str, csv_path, *extra: str):
    return tiny_run_config(root, name, csv_path, "train.epochs=3", "augment.shift=0.1", "augment.flip=0.5", *extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """An uninterrupted run with today's defaults (no train.device given)."""
    torch.set_num_threads(1)
    config = _config(tmp_path_factory.mktemp("runs"), "reference", data / "fer2013.csv")
    return config, train(config)


def _last(config) -> dict:
    return torch.load(config.run_dir / "last.pt", map_location="cpu", weights_only=True)


def _assert_same_run(config, result, ref_config, ref_result) -> None:
    assert [[r[k] for k in KEYS] for r in result.history] == [[r[k] for k in KEYS] for r in ref_result.history]
    got, want = _last(config), _last(ref_config)
    for key, value in want["model_checkpoint"]["state_dict"].items():
        assert torch.equal(got["model_checkpoint"]["state_dict"][key], value), key
    assert got["optimizer"]["state"][0]["step"] == want["optimizer"]["state"][0]["step"]


# --- device resolution ----------------------------------------------------------------------------------------


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(FerkitError, match="CUDA is not available"):
            resolve_device(name)
    with pytest.raises(FerkitError, match="unknown train.device 'tpu'; valid: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")


def test_resolve_device_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    torchrun_rank3 = DistEnv(rank=3, world_size=4, local_rank=3)
    assert resolve_device("auto", torchrun_rank3) == torch.device("cuda", 1)  # LOCAL_RANK modulo the GPUs
    for bad in ("cuda:2", "cuda:x"):
        with pytest.raises(FerkitError, match="no such GPU; this machine has 2"):
            resolve_device(bad)


def test_training_asking_for_missing_cuda_fails_before_writing(tmp_path, data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FerkitError, match="CUDA is not available"):
        train(_config(tmp_path, "gpu", data / "fer2013.csv", "train.device=cuda"))
    assert not (tmp_path / "gpu").exists()


@pytest.mark.slow
def test_device_cpu_trains_exactly_like_the_default(reference, tmp_path, data):
    ref_config, ref = reference
    assert ref_config.train.device == "auto"
    config = _config(tmp_path, "cpu", data / "fer2013.csv", "train.device=cpu")
    _assert_same_run(config, train(config), ref_config, ref)
    assert ref.history[-1]["train_loss"] < ref.history[0]["train_loss"]


@pytest.mark.slow
def test_bf16_falls_back_to_fp32_where_the_cpu_has_no_native_bf16(reference, tmp_path, data, monkeypatch, caplog):
    ref_config, ref = reference
    monkeypatch.setattr(device_module, "native_bf16", lambda device: False)
    config = _config(tmp_path, "no_native", data / "fer2013.csv", "train.bf16=true")
    with caplog.at_level("WARNING", logger="ferkit.training.device"):
        result = train(config)
    assert "no native bf16: training in fp32" in caplog.text
    _assert_same_run(config, result, ref_config, ref)  # exactly the fp32 run
    assert _last(config)["config"]["train"]["bf16"] is True  # the config keeps what was asked for
    assert json.loads((config.run_dir / "metrics.json").read_text())["precision"] == "fp32"  # what ran

    # Where bf16 is native, the same config trains under bf16 autocast: other numbers than fp32.
    monkeypatch.setattr(device_module, "native_bf16", lambda device: True)
    config = _config(tmp_path, "native", data / "fer2013.csv", "train.bf16=true")
    result = train(config)
    assert [r["train_loss"] for r in result.history] != [r["train_loss"] for r in ref.history]
    assert json.loads((config.run_dir / "metrics.json").read_text())["precision"] == "bf16 autocast"

    # A run cut off on a machine without native bf16 and resumed on one with it says it changed precision.
    monkeypatch.setattr(device_module, "native_bf16", lambda device: False)
    config = _config(tmp_path, "moved", data / "fer2013.csv", "train.bf16=true", "train.time_limit_s=0.001")
    assert train(config).stop_reason.startswith("time limit") and _last(config)["precision"] == "fp32"
    monkeypatch.setattr(device_module, "native_bf16", lambda device: True)
    with caplog.at_level("WARNING", logger="ferkit.training.run"):
        train(_config(tmp_path, "moved", data / "fer2013.csv"), resume=True)
    assert "trained in fp32 until now and continues in bf16 autocast" in caplog.text
    assert json.loads((config.run_dir / "metrics.json").read_text())["precision"] == "fp32, then bf16 autocast"


# --- tensors on another device ----------------------------------------------------------------------------------


def _reference_augment(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Augment as it was before device support (CPU only), kept here as the parity reference."""
    b, (h, w) = x.shape[0], x.shape[-2:]

    def uniform(low, high):
        return torch.rand(b, generator=g) * (high - low) + low

    angle, shear = uniform(-aug.rotation, aug.rotation) * math.pi / 180, uniform(-aug.shear, aug.shear) * math.pi / 180
    scale = uniform(1 - aug.zoom, 1 + aug.zoom)
    tx, ty = uniform(-aug.shift, aug.shift) * 2, uniform(-aug.shift, aug.shift) * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = (cos / scale, (-sin + cos * torch.tan(shear)) / scale)
    c = (sin / scale, (cos + sin * torch.tan(shear)) / scale)
    theta = torch.stack([torch.stack([a[0], a[1], tx], 1), torch.stack([c[0], c[1], ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = torch.where((torch.rand(b, generator=g) < aug.flip)[:, None, None, None], x.flip(-1), x)
    which = torch.rand(b, generator=g) < aug.erasing
    area = uniform(0.02, 0.2) * h * w
    aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
    eh, ew = (area * aspect).sqrt().clamp(1, h).long(), (area / aspect).sqrt().clamp(1, w).long()
    top, left = (uniform(0, 1) * (h - eh + 1)).long(), (uniform(0, 1) * (w - ew + 1)).long()
    rows, cols = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    mask = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None]) & (cols >= left[:, None, None])
            & (cols < (left + ew)[:, None, None]) & which[:, None, None])
    return x.masked_fill(mask[:, None], 0.0)


def test_augment_matches_the_cpu_reference_and_draws_on_the_cpu_for_device_tensors():
    aug = Augment(shift=0.1, rotation=10, zoom=0.1, shear=5, flip=0.5, erasing=0.5)
    x = torch.rand(12, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    want = _reference_augment(x, aug, torch.Generator().manual_seed(7))
    assert torch.equal(aug(x, torch.Generator().manual_seed(7)), want)
    # a batch elsewhere ("meta": mixing a CPU tensor into its arithmetic raises) takes the same CPU draws
    cpu_gen, device_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    aug(x, cpu_gen)
    out = aug(torch.empty(12, 1, 48, 48, device="meta"), device_gen)
    assert out.device.type == "meta" and out.shape == x.shape
    assert torch.equal(device_gen.get_state(), cpu_gen.get_state())


def test_preprocessing_and_prediction_take_device_tensors():
    faces = torch.randint(0, 256, (5, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    on_meta = Preprocessing(size=24, channels=3, mean=0.5, std=0.25)(faces.to("meta"))
    assert on_meta.device.type == "meta" and on_meta.shape == (5, 3, 24, 24)
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", input_size=48).eval()
    prep = Preprocessing()
    from_numpy = predict_proba(model, faces.numpy(), prep, batch_size=2, tta="flip")
    from_tensor = predict_proba(model, faces, prep, batch_size=2, tta="flip")
    assert isinstance(from_tensor, np.ndarray) and np.array_equal(from_numpy, from_tensor)
    labels = torch.tensor([0, 1, 2, 3, 4])
    assert evaluate(model, faces, labels, preprocessing=prep) == evaluate(model, faces.numpy(), labels.numpy(),
                                                                          preprocessing=prep)


# --- time limit, resume, checkpoints from a GPU ---------------------------------------------------------------


@pytest.mark.slow
def test_time_limit_stops_after_each_epoch_and_resume_ends_like_an_uninterrupted_run(reference, tmp_path, data):
    ref_config, ref = reference
    config = _config(tmp_path, "limited", data / "fer2013.csv", "train.time_limit_s=1e-9")  # passed in every epoch
    first = train(config)
    assert len(first.history) == 1 and first.test_metrics == {}
    assert first.stop_reason.startswith("time limit: stopped after epoch 1/3") and "--resume" in first.stop_reason
    assert not (config.run_dir / "metrics.json").exists() and _last(config)["stop_reason"] is None
    second = train(config, resume=True)  # the resuming command's own limit applies
    assert len(second.history) == 2 and second.stop_reason.startswith("time limit: stopped after epoch 2/3")
    unlimited = _config(tmp_path, "limited", data / "fer2013.csv")
    final = train(unlimited, resume=True)
    assert final.stop_reason == "completed 3 epochs" and (config.run_dir / "metrics.json").is_file()
    _assert_same_run(config, final, ref_config, ref)
    assert final.test_metrics["test_acc"] == ref.test_metrics["test_acc"]


@contextlib.contextmanager
def _saved_as_if_on_cuda():
    """While active, ``torch.save`` records every CPU tensor as stored on ``cuda:0`` (as a GPU run's would be)."""
    def tag(obj):
        return "cuda:0" if getattr(obj, "device", None) is not None and obj.device.type == "cpu" else None

    torch.serialization.register_package(0, tag, lambda obj, location: None)
    try:
        yield
    finally:
        torch.serialization._package_registry[:] = [e for e in torch.serialization._package_registry if e[1] is not tag]


def _all_tensors(tree):
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _all_tensors(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _all_tensors(value)


@pytest.mark.slow
def test_a_run_saved_on_a_gpu_resumes_on_the_cpu(reference, tmp_path, data):
    ref_config, ref = reference
    assert all(t.device.type == "cpu" for t in _all_tensors(_last(ref_config)))
    config = _config(tmp_path, "from_gpu", data / "fer2013.csv", "train.time_limit_s=1e-9")
    train(config)
    for name in ("last.pt", "best.pt"):  # re-save both with every storage tagged cuda:0
        path = config.run_dir / name
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if name == "last.pt":
            payload["rng"]["cuda"] = torch.zeros(16, dtype=torch.uint8)  # a GPU run's; ignored on the CPU
        with _saved_as_if_on_cuda():
            torch.save(payload, path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(config.run_dir / "last.pt", weights_only=True)  # the tags are real
    load_model(config.run_dir / "best.pt")
    resumed = train(_config(tmp_path, "from_gpu", data / "fer2013.csv", "train.device=cpu"), resume=True)
    assert resumed.stop_reason == "completed 3 epochs"
    _assert_same_run(config, resumed, ref_config, ref)


def test_cuda_rng_state_is_ignored_on_the_cpu():
    state = rng_state(torch.device("cpu"))
    assert "cuda" not in state
    expected = torch.rand(3)
    set_rng_state({**state, "cuda": torch.zeros(16, dtype=torch.uint8)}, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_compile_trains_through_the_compiled_module_and_saves_the_plain_one(tmp_path, data, monkeypatch):
    calls = []

    class Compiled(nn.Module):  # stands in for torch.compile's wrapper (whose names get a prefix)
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            calls.append(len(x))
            return self.inner(x)

    monkeypatch.setattr(run_module.torch, "compile", Compiled)
    config = _config(tmp_path, "compiled", data / "fer2013.csv", "train.compile=true", "train.epochs=1")
    train(config)
    assert calls == [16, 16]  # 42 training images, batch 16, the last partial batch dropped
    plain = create_model("ferkit_cnn_small", input_size=24).state_dict()
    assert _last(config)["model_checkpoint"]["state_dict"].keys() == plain.keys()


# --- data pack and result transfer --------------------------------------------------------------------------------


def _packed(scripts, data, tmp_path, part_bytes: int) -> tuple[dict, Path]:
    gpu_pack = scripts("gpu_pack")
    out = tmp_path / "pack" / "fer2013"
    return gpu_pack.pack(str(data / "fer2013.csv"), out, ferplus=str(data / "fer2013new.csv"),
                         part_bytes=part_bytes), out


def test_pack_round_trip_gives_the_csv_readers_arrays(scripts, data, tmp_path):
    manifest, out = _packed(scripts, data, tmp_path, part_bytes=40_000)
    parts = [out.parent / p["name"] for p in manifest["parts"]]
    assert len(parts) >= 3 and all(p.stat().st_size <= 40_000 for p in parts)
    assert sum(p.stat().st_size for p in parts) == sum(p["size"] for p in manifest["parts"])
    travelled = tmp_path / "device"  # only the parts and the manifest reach the device
    travelled.mkdir()
    for path in [*parts, out.with_name("fer2013.manifest.json")]:
        (travelled / path.name).write_bytes(path.read_bytes())
    npz = scripts("gpu_unpack").join_parts(travelled / "fer2013.manifest.json")
    assert npz == travelled / "fer2013.npz" and npz.read_bytes() == out.with_name("fer2013.npz").read_bytes()
    csv = read_fer2013(data / "fer2013.csv")
    packed = load_splits(load_config(None, [f"data.path={npz}"]).data)
    for fmt, extra in (("fer2013", []), ("ferplus", [f"data.ferplus_path={data / 'fer2013new.csv'}"])):
        want = load_splits(load_config(None, [f"data.format={fmt}", f"data.path={data / 'fer2013.csv'}", *extra]).data)
        got = load_splits(load_config(None, [f"data.format={fmt}", f"data.path={npz}"]).data)
        for split in ("train", "val", "test"):
            a, b = getattr(want, split), getattr(got, split)
            assert a.label_names == b.label_names
            for name in ("images", "labels", "soft_labels", "splits", "sources"):
                x, y = getattr(a, name), getattr(b, name)
                assert (x is None and y is None) or (x.dtype == y.dtype and np.array_equal(x, y)), (fmt, split, name)
    assert np.array_equal(packed.train.images, csv.split("Training").images)


def test_unpack_names_missing_and_damaged_parts(scripts, data, tmp_path):
    unpack = scripts("gpu_unpack")
    manifest, out = _packed(scripts, data, tmp_path, part_bytes=40_000)
    manifest_path = out.with_name("fer2013.manifest.json")
    target = tmp_path / "rebuilt.npz"
    second = out.parent / manifest["parts"][1]["name"]
    good = second.read_bytes()
    second.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(unpack.UnpackError, match="damaged part"):
        unpack.join_parts(manifest_path, target)
    second.unlink()
    with pytest.raises(unpack.UnpackError, match=rf"1 of {len(manifest['parts'])} part\(s\) missing: {second.name}"):
        unpack.join_parts(manifest_path, target)
    assert not target.exists()
    second.write_bytes(good)
    manifest["sha256"] = "0" * 64  # parts intact, but not the file the manifest promises
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(unpack.UnpackError, match="does not match"):
        unpack.join_parts(manifest_path, target)
    assert not target.exists() and not list(tmp_path.glob(".rebuilt.npz.*"))


def _git_tree(root: Path, files: dict[str, int], ignored: str = "") -> Path:
    """A git repository at ``root`` with files of the given sizes (``ignored`` goes to .gitignore)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(ignored)
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.truncate(size)  # sparse: the size counts, the disk is spared
    return root


def test_default_part_size_leaves_room_for_the_working_tree(scripts, tmp_path):
    gpu_pack = scripts("gpu_pack")
    mb = gpu_pack.MB
    small = _git_tree(tmp_path / "small", {"a.py": 1_000, "runs/big.pt": 50 * mb}, ignored="/runs/\n")
    tree = gpu_pack.travelling_tree_bytes(small)
    assert tree == 1_000 + len("/runs/\n")  # ignored files do not travel
    assert gpu_pack.default_part_bytes(small) == 30 * mb
    middle = _git_tree(tmp_path / "middle", {"checkpoints/m.pt": 40 * mb})
    part = gpu_pack.default_part_bytes(middle)
    assert 1 * mb <= part < 30 * mb
    assert gpu_pack.travelling_tree_bytes(middle) + part + gpu_pack.MARGIN <= 64 * 2**20
    full = _git_tree(tmp_path / "full", {"parked/last.pt": 66 * mb})
    with pytest.raises(SystemExit, match=r"working tree \(66\.0 MB\) leaves no room"):
        gpu_pack.default_part_bytes(full)
    assert gpu_pack.default_part_bytes(tmp_path / "not_a_repo") == 30 * mb


def test_collected_results_come_back_over_several_calls(reference, scripts, tmp_path, monkeypatch):
    ref_config, _ = reference
    collect, unpack = scripts("gpu_collect"), scripts("gpu_unpack")
    monkeypatch.chdir(ref_config.run_dir.parent.parent)  # queue paths are relative to the repo root
    run = ref_config.run_dir.relative_to(Path.cwd())
    queue = tmp_path / "queue.txt"
    queue.write_text(f"# a comment\n{run} configs/x.toml train.seed=0\n")
    best = (run / "best.pt").stat().st_size
    monkeypatch.setattr(collect, "PART", best // 3 + 1)  # best.pt in 3 parts, last.pt in more
    monkeypatch.setattr(collect, "MAX_FILES", 3)  # results.tar.gz + 2 parts a call
    ledger = tmp_path / "device_out" / "gpu_sent.json"
    calls = [tmp_path / f"call{i}" for i in range(2)]
    for out in calls:
        collect.collect(queue, out, ledger=ledger)
        names = sorted(p.name for p in out.iterdir())
        assert len(names) <= 3 and "results.tar.gz" in names
        assert all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    to = tmp_path / "here"
    report = unpack.unpack_results(calls, to)
    assert report["rebuilt"] == [f"{run}/best.pt"] and report["incomplete"] == []
    assert (to / run / "best.pt").read_bytes() == (run / "best.pt").read_bytes()
    for name in ("history.csv", "metrics.json", "config.toml"):
        assert (to / run / name).read_bytes() == (run / name).read_bytes()
    summary = json.loads((to / "out" / "gpu" / "gpu_results.json").read_text())
    assert summary["runs"][0]["finished"] and summary["runs"][0]["epochs_done"] == 3
    # fp16 weights: half the bytes, and they load as the model
    half = collect.collect(queue, tmp_path / "call_half", ledger=ledger, half_best=True)
    assert half["checkpoints"][0]["fp16"] and half["checkpoints"][0]["bytes"] < 0.6 * best


def test_last_checkpoint_of_an_unfinished_run_comes_whole_unless_asked(scripts, tmp_path, monkeypatch):
    collect = scripts("gpu_collect")
    monkeypatch.chdir(tmp_path)
    run = Path("runs/u")
    run.mkdir(parents=True)
    (run / "history.csv").write_text("epoch,train_loss\n1,2.0\n")
    (run / "best.pt").write_bytes(b"b" * 100)
    (run / "last.pt").write_bytes(b"l" * 1000)
    Path("queue.txt").write_text("runs/u configs/x.toml\n")
    monkeypatch.setattr(collect, "PART", 300)  # last.pt: 4 parts

    def sent(out: Path) -> list[str]:  # "runs_u_last.pt.<sha>.003" -> "runs_u_last.003"
        names = [p.name.split(".") for p in out.iterdir() if p.name != "results.tar.gz"]
        return sorted(f"{n[0]}.{n[-1]}" for n in names)

    monkeypatch.setattr(collect, "MAX_FILES", 4)  # room for best.pt and 2 more parts: last.pt does not fit whole
    collect.collect(Path("queue.txt"), Path("call1"), ledger=Path("ledger.json"))
    assert sent(Path("call1")) == ["runs_u_best.000"]
    monkeypatch.setattr(collect, "MAX_FILES", 8)
    summary = collect.collect(Path("queue.txt"), Path("call2"), ledger=Path("ledger.json"))
    assert sent(Path("call2")) == [f"runs_u_last.{i:03d}" for i in range(4)]
    assert summary["runs"][0] == {"run": "runs/u", "epochs_done": 1, "finished": False, "metrics": None}
    (run / "last.pt").write_bytes(b"m" * 1000)  # a later epoch's
    monkeypatch.setattr(collect, "MAX_FILES", 3)
    collect.collect(Path("queue.txt"), Path("call3"), ledger=Path("ledger.json"), last=True)  # in parts
    assert sent(Path("call3")) == ["runs_u_last.000", "runs_u_last.001"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="bash driver")
def test_gpu_queue_driver_trains_and_collects_on_the_cpu(scripts, data, tmp_path):
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("gpu_queue.sh", "gpu_unpack.py", "gpu_collect.py"):
        (root / "scripts" / name).write_bytes((ROOT / "scripts" / name).read_bytes())
    _packed(scripts, data, root / "out", part_bytes=10**6)
    (root / "out" / "pack" / "fer2013.npz").unlink()  # the driver rebuilds it from the parts
    (root / "tiny.toml").write_text('[model]\nname = "ferkit_cnn_small"\ninput_size = 24\n'
                                    '[train]\nepochs = 2\nbatch_size = 16\nbf16 = false\nthreads = 1\n')
    (root / "queue.txt").write_text("runs/q/tiny tiny.toml train.seed=1\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "DEVICE": "cpu", "OUT": str(tmp_path / "OUT"),
           "PACK": "out/pack/fer2013.npz", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(["bash", "scripts/gpu_queue.sh", "queue.txt", "400"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "runs" / "q" / "tiny" / "metrics.json").is_file()
    back = sorted(p.name for p in (tmp_path / "OUT").iterdir())
    assert "results.tar.gz" in back and any(name.startswith("runs_q_tiny_best.pt.") for name in back)
    log = (root / "out" / "gpu_queue.log").read_text()
    assert "train runs/q/tiny  (train.time_limit_s=" in log and "collecting" in log
