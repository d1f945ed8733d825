"""Cross-fitted teachers: K models, each trained without one fold of FER2013 Training, cached as one teacher.

A teacher that saw a face in training labels it with a confidence it does not have on new faces (the committed
models are 79-90% right on their own Training faces, 66-69% on PublicTest), so its soft targets carry little
beyond the hard label. Trained with ``data.folds = K`` and ``data.fold = k`` (:func:`ferkit.data.sources.held_in`),
the K fold models each give the faces of the fold they never saw: every Training face gets an out-of-fold
probability. :func:`cache_cross_fitted` writes those (and the mirror images'), with the mean of the K models on
PublicTest and PrivateTest, in the format of :func:`ferkit.evaluation.teachers.cache_member`, so the ensemble
choice and the students read a cross-fitted teacher like any other member.

A fold's part is small (:func:`fold_arrays`: its held-out faces and the two test splits, ~0.2 MB in fp16), so a
finished fold run is published as a record (``ferkit publish`` writes ``checkpoints/NAME.oof.npz``,
:func:`write_fold_record`): the K folds can be trained in different sessions, on machines that do not keep the
run store, and a folder of the K records is the same teacher as the folder of the K runs.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..config import config_from_dict
from ..data.dataset import FaceData
from ..data.sources import training_folds
from ..errors import FerkitError
from ..io import atomic_open, file_sha256
from ..models import load_model
from .ensemble import label_order
from .members import faces_sha256, member_name
from .predict import predict_proba

log = logging.getLogger(__name__)

#: A published fold's record, beside its metrics file (``checkpoints/NAME.oof.npz``).
RECORD_SUFFIX = ".oof.npz"
TEST_SPLITS = ("PublicTest", "PrivateTest")


def fold_sources(folder: Path) -> list[Path]:
    """The ``best.pt`` of every run in ``folder`` (one per fold), else its published fold records; sorted."""
    found = sorted(folder.glob("*/best.pt")) or sorted(folder.glob(f"*{RECORD_SUFFIX}"))
    if not found:
        raise FerkitError(f"{folder}: no fold runs (*/best.pt) or fold records (*{RECORD_SUFFIX}) inside; a "
                          "cross-fitted teacher is a folder of the K runs trained with data.folds=K data.fold=k "
                          "(or of their records, ferkit publish)")
    return found


def fold_arrays(checkpoint: Path, data: FaceData) -> dict[str, np.ndarray]:
    """One fold model's probabilities on the Training faces it never saw (and their mirrors), on PublicTest and
    PrivateTest, in the data's label order, with its fold settings and which rows it held out."""
    model, info = load_model(checkpoint)
    settings = config_from_dict(info.config).data
    if not settings.folds:
        raise FerkitError(f"{checkpoint}: not trained with data.folds; a fold of a cross-fitted teacher is")
    columns = label_order(info, data.label_names, str(checkpoint))
    train = data.split("Training")
    held = training_folds(train, settings.folds, settings.split_seed)[settings.fold]
    faces = train.images[held]
    arrays = {"folds": np.array(settings.folds), "fold": np.array(settings.fold),
              "split_seed": np.array(settings.split_seed), "held": held.astype(np.int32),
              "sha256": np.array(file_sha256(checkpoint)),
              "training_faces_sha256": np.array(faces_sha256(train.images)),
              "Training": predict_proba(model, faces, info.preprocessing)[:, columns],
              "Training_flip": predict_proba(model, np.ascontiguousarray(faces[:, :, ::-1]),
                                             info.preprocessing)[:, columns]}
    for split in TEST_SPLITS:
        arrays[split] = predict_proba(model, data.split(split).images, info.preprocessing)[:, columns]
    return arrays


def write_fold_record(checkpoint: Path, data: FaceData, target: Path) -> Path:
    """``target`` (``*.oof.npz``): :func:`fold_arrays` of ``checkpoint``, probabilities in fp16, compressed."""
    arrays = fold_arrays(checkpoint, data)
    arrays.update({key: value.astype(np.float16) for key, value in arrays.items() if value.dtype == np.float32})
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target


def _read_fold(source: Path, data: FaceData) -> dict[str, np.ndarray]:
    """A fold's arrays from its run's checkpoint, or from its record."""
    if not source.name.endswith(RECORD_SUFFIX):
        return fold_arrays(source, data)
    with np.load(source) as record:
        return {key: record[key] for key in record.files}


def _check_folds(folder: Path, folds: list[dict[str, np.ndarray]]) -> int:
    """K, checked: every fold of one setting (K and split seed) exactly once."""
    settings = sorted((int(f["folds"]), int(f["split_seed"]), int(f["fold"])) for f in folds)
    if len({s[:2] for s in settings}) != 1:
        raise FerkitError(f"{folder}: the runs disagree on data.folds/split_seed ({settings}); one teacher is K runs "
                          "of one setting")
    k = settings[0][0]
    if [s[2] for s in settings] != list(range(k)):
        raise FerkitError(f"{folder}: folds {[s[2] for s in settings]} found; a {k}-fold teacher needs each of "
                          f"0..{k - 1} exactly once")
    return k


def cache_cross_fitted(folder: Path, data: FaceData, cache_dir: Path) -> Path:
    """``cache_dir/FOLDER-NAME_xfit.npz``: out-of-fold Training probabilities (and their mirrors') of the fold runs
    or records in ``folder``, their mean on PublicTest and PrivateTest; reused while those files are unchanged."""
    sources = fold_sources(folder)
    digest = hashlib.sha256("".join(file_sha256(p) for p in sources).encode()).hexdigest()
    target = Path(cache_dir) / f"{member_name(folder)}.npz"
    if target.is_file():
        with np.load(target) as cached:
            if str(cached["sha256"]) == digest:
                return target
    folds = [_read_fold(source, data) for source in sources]
    k = _check_folds(folder, folds)
    train = data.split("Training")
    wanted = faces_sha256(train.images)
    for source, fold in zip(sources, folds, strict=True):
        if str(fold["training_faces_sha256"]) != wanted:
            raise FerkitError(f"{source}: recorded on other Training faces than these (another data file?)")
    arrays = {"sha256": np.array(digest), "training_faces_sha256": np.array(wanted)}
    for name in ("Training", "Training_flip"):
        arrays[name] = np.zeros((len(train), len(data.label_names)), np.float32)
        for fold in folds:
            arrays[name][fold["held"]] = fold[name]
    for split in TEST_SPLITS:
        arrays[split] = sum(fold[split].astype(np.float32) for fold in folds) / k
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as handle:
        np.savez(handle, **arrays)
    log.info("cached the %d-fold teacher %s in %s", k, folder, target)
    return target
