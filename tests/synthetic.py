"""Synthetic, learnable faces, tiny FER2013 CSVs and random checkpoints for the tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferkit.config import load_config
from ferkit.data.preprocessing import Preprocessing
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, save_model

#: Overrides for a small, fast training run: the tiny CNN on 24 px faces, fp32, one-cycle.
TINY_RUN = ("model.name=ferkit_cnn_small", "model.input_size=24", "train.batch_size=16", "train.lr=0.003",
            "train.bf16=false", "train.scheduler=onecycle", "train.eval_batch_size=64")

#: The tests' usual model input: 48x48 gray faces, scaled as the shipped models scale them.
FACE_INPUT = Preprocessing(size=48, channels=1, mean=0.5, std=0.25)


def class_faces(n_per_class: int, rng: np.random.Generator, side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Class k: brightness 30k + 25, with a bright band at row 6k; plus noise. Learnable from pixels."""
    labels = np.repeat(np.arange(7), n_per_class)
    images = np.empty((len(labels), side, side), dtype=np.uint8)
    for i, k in enumerate(labels):
        img = np.full((side, side), 30.0 * k + 25) + rng.normal(0, 12, (side, side))
        img[6 * k * side // 48:(6 * k + 5) * side // 48] += 60
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


def write_faces_csv(path: Path, rows) -> Path:
    """A CSV in FER2013's format (``emotion,pixels,Usage``) from ``(label, uint8 image, usage)`` rows: the one
    writer of the tests' FER2013 files."""
    lines = ["emotion,pixels,Usage"]
    lines += [f"{int(k)},{' '.join(map(str, np.asarray(img).ravel()))},{usage}" for k, img, usage in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_fer2013_csv(path: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A FER2013 CSV at ``path`` with ``per_class[usage]`` faces of each of the 7 classes per Usage."""
    rng = np.random.default_rng(seed)
    rows = []
    for usage, n in per_class.items():
        images, labels = class_faces(n, rng)
        rows += [(k, img, usage) for img, k in zip(images, labels)]
    return write_faces_csv(path, rows)


def with_running_stats(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial statistics and scales (so folding them into the convolutions matters);
    the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
    return model.eval()


def small_checkpoint(path: Path, *, preprocessing: Preprocessing = FACE_INPUT, running_stats: bool = False,
                     half: bool = False) -> Path:
    """A ``ferkit_cnn_small`` with random weights (seed 0) for FER2013's 7 emotions, saved at ``path``: the tests'
    one stand-in for a trained classifier. ``running_stats``: :func:`with_running_stats`."""
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small")
    if running_stats:
        model = with_running_stats(model)
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS, preprocessing=preprocessing)
    return save_model(path, model, info, half=half)


def csv_and_checkpoint(root: Path, *, public_per_class: int, seed: int) -> tuple[Path, Path]:
    """A FER2013 CSV with ``public_per_class`` PublicTest faces a class (one each in the other splits) and a
    :func:`small_checkpoint` stored in half precision: what the tuning commands (balance, calibrate) read."""
    csv_path = write_fer2013_csv(root / "fer.csv", {"Training": 1, "PublicTest": public_per_class, "PrivateTest": 1},
                                 seed=seed)
    return csv_path, small_checkpoint(root / "model.pt", preprocessing=Preprocessing(), half=True)


def tiny_run_config(root: Path, name: str, csv_path: Path, *extra: str):
    """A :data:`TINY_RUN` config named ``name`` under ``root``, on the FER2013 CSV ``csv_path``; ``extra`` overrides
    come last."""
    return load_config(None, [f"name={name}", f"out_dir={root}", f"data.path={csv_path}", *TINY_RUN, *extra])
