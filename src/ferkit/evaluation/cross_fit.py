"""Cross-fitted teachers: K models, each trained without one fold of FER2013 Training, cached as one teacher.

A teacher that saw a face in training labels it with a confidence it does not have on new faces (the committed
models are 79-90% right on their own Training faces, 66-69% on PublicTest), so its soft targets carry little
beyond the hard label. Trained with ``data.folds = K`` and ``data.fold = k`` (:func:`ferkit.data.sources.held_in`),
the K fold models each give the faces of the fold they never saw: every Training face gets an out-of-fold
probability. :func:`cache_cross_fitted` writes those (and the mirror images'), with the mean of the K models on
PublicTest and PrivateTest, in the format of :func:`ferkit.evaluation.teachers.cache_member`, so the ensemble
choice and the students read a cross-fitted teacher like any other member.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import config_from_dict
from ..data.dataset import FaceData
from ..data.sources import training_folds
from ..errors import FerkitError
from ..io import atomic_open, file_sha256
from ..models import load_model
from .ensemble import label_order
from .predict import predict_proba

log = logging.getLogger(__name__)


def fold_checkpoints(folder: Path) -> list[Path]:
    """The ``best.pt`` of every run in ``folder`` (one per fold), sorted."""
    found = sorted(folder.glob("*/best.pt"))
    if not found:
        raise FerkitError(f"{folder}: no fold runs (*/best.pt) inside; a cross-fitted teacher is a folder of the K "
                          "runs trained with data.folds=K data.fold=k")
    return found


def _fold_settings(folder: Path, configs: Sequence[dict]) -> tuple[int, int, list[int]]:
    """(K, split seed, each run's fold) from the runs' configs, checked: one run per fold 0..K-1, all with the same
    K and seed."""
    settings = [(d.folds, d.split_seed, d.fold) for d in (config_from_dict(c).data for c in configs)]
    folds, seeds = {s[0] for s in settings}, {s[1] for s in settings}
    if len(folds) != 1 or len(seeds) != 1 or 0 in folds:
        raise FerkitError(f"{folder}: the runs disagree on data.folds/split_seed, or were not trained with folds "
                          f"({sorted(settings)}); one teacher is K runs of one setting")
    k = folds.pop()
    order = [s[2] for s in settings]
    if sorted(order) != list(range(k)):
        raise FerkitError(f"{folder}: folds {sorted(order)} found; a {k}-fold teacher needs each of "
                          f"0..{k - 1} exactly once")
    return k, seeds.pop(), order


def cache_cross_fitted(folder: Path, data: FaceData, cache_dir: Path) -> Path:
    """``cache_dir/FOLDER-NAME_xfit.npz``: out-of-fold Training probabilities (and their mirrors') of the fold runs in
    ``folder``, their mean on PublicTest and PrivateTest; reused while the checkpoints are unchanged."""
    from .teachers import SPLITS, faces_sha256, member_name

    checkpoints = fold_checkpoints(folder)
    digest = hashlib.sha256("".join(file_sha256(p) for p in checkpoints).encode()).hexdigest()
    target = Path(cache_dir) / f"{member_name(folder)}.npz"
    if target.is_file():
        with np.load(target) as cached:
            if str(cached["sha256"]) == digest:
                return target
    models = [load_model(path) for path in checkpoints]
    k, seed, order = _fold_settings(folder, [info.config for _, info in models])
    train = data.split("Training")
    held = training_folds(train, k, seed)
    arrays = {"sha256": np.array(digest), "training_faces_sha256": np.array(faces_sha256(train.images))}
    arrays.update({name: 0.0 for name in SPLITS[1:]})
    arrays["Training"] = np.zeros((len(train), len(data.label_names)), np.float32)
    arrays["Training_flip"] = np.zeros_like(arrays["Training"])
    for path, (model, info), fold in zip(checkpoints, models, order, strict=True):
        columns = label_order(info, data.label_names, str(path))
        faces = train.images[held[fold]]
        arrays["Training"][held[fold]] = predict_proba(model, faces, info.preprocessing)[:, columns]
        mirrored = np.ascontiguousarray(faces[:, :, ::-1])
        arrays["Training_flip"][held[fold]] = predict_proba(model, mirrored, info.preprocessing)[:, columns]
        for split in SPLITS[1:]:
            arrays[split] = arrays[split] + predict_proba(model, data.split(split).images, info.preprocessing)[
                :, columns] / k
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as handle:
        np.savez(handle, **arrays)
    log.info("cached the %d-fold teacher %s in %s", k, folder, target)
    return target
