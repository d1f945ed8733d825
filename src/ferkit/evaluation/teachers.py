"""Teacher probabilities cached once, and a teacher ensemble chosen on PublicTest (for distilling students).

For each classifier, :func:`cache_member` keeps its class probabilities on the Training faces and on their
mirror images (what a student distils from), and on PublicTest and PrivateTest (to choose and to report
the ensemble), in the data's label order, in ``CACHE/NAME.npz`` with the checkpoint's sha256: an unchanged
file is never run twice, a changed one is run again. :func:`select_ensemble` picks members greedily, with
repetition (weights), by PublicTest accuracy; :func:`fit_temperature` softens the mean on PublicTest's
log-loss. PrivateTest is only ever reported, never used to choose. A folder of fold runs is one cross-fitted
member (:mod:`ferkit.evaluation.cross_fit`). With ``training=False`` only the two test splits are cached (an eighth
of the work): enough to choose an ensemble to ship (``ferkit ensemble``), not to distil from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.dataset import FaceData
from ..errors import FerkitError
from ..io import atomic_open, file_sha256
from ..models import load_model, require_classifier
from .calibration import fit_temperature
from .ensemble import label_order
from .members import faces_sha256, member_name
from .metrics import log_loss
from .predict import predict_proba

log = logging.getLogger(__name__)

SPLITS = ("Training", "PublicTest", "PrivateTest")
TEST_SPLITS = SPLITS[1:]


def cache_member(checkpoint: str | Path, data: FaceData, cache_dir: Path, *, training: bool = True) -> Path:
    """``cache_dir/NAME.npz`` with the checkpoint's probabilities on each split (and ``Training_flip``); with
    ``training=False`` on the test splits only (a full cache of the same file is reused, a test-only one is
    completed by the next full call)."""
    checkpoint = Path(checkpoint)
    digest, target = file_sha256(checkpoint), Path(cache_dir) / f"{member_name(checkpoint)}.npz"
    if target.is_file():
        with np.load(target) as cached:
            if str(cached["sha256"]) == digest and ("training_faces_sha256" in cached or not training):
                return target
    model, info = load_model(checkpoint)
    require_classifier(info, checkpoint)
    order = label_order(info, data.label_names, str(checkpoint))
    arrays: dict[str, np.ndarray] = {"sha256": np.array(digest)}
    for split in SPLITS if training else TEST_SPLITS:
        faces = data.split(split).images
        arrays[split] = predict_proba(model, faces, info.preprocessing)[:, order]
        if split == "Training":
            arrays["training_faces_sha256"] = np.array(faces_sha256(faces))
            arrays["Training_flip"] = predict_proba(model, np.ascontiguousarray(faces[:, :, ::-1]),
                                                    info.preprocessing)[:, order]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as handle:
        np.savez(handle, **arrays)
    log.info("cached %s's probabilities in %s", checkpoint, target)
    return target


def _cache(member: str | Path, data: FaceData, cache_dir: Path, training: bool) -> Path:
    """The cache file of a checkpoint, or of a folder of fold runs (a cross-fitted teacher, always in full)."""
    from ..training.store import existing_run_file
    from .cross_fit import cache_cross_fitted

    path = existing_run_file(member)
    if path.is_dir():
        return cache_cross_fitted(path, data, cache_dir)
    return cache_member(path, data, cache_dir, training=training)


def load_cache(paths: Sequence[Path], split: str) -> dict[str, np.ndarray]:
    """``{member name: probabilities on split}`` from cache files."""
    out = {}
    for path in paths:
        with np.load(path) as cached:
            out[Path(path).stem] = cached[split]
    return out


def select_ensemble(probs: dict[str, np.ndarray], labels: np.ndarray, rounds: int = 25,
                    max_members: int | None = None) -> dict[str, int]:
    """Greedy forward selection with repetition: each round adds the member that most raises the accuracy of
    the running mean (ties: the lower log-loss); ``{name: times chosen}`` after the best round. With
    ``max_members``, once that many distinct members are in, later rounds only repeat them (a compute budget)."""
    names = sorted(probs)
    total = np.zeros_like(probs[names[0]], dtype=np.float64)
    chosen: list[str] = []
    best: tuple[float, float, int] = (-1.0, 0.0, 0)
    for _ in range(rounds):
        full = max_members is not None and len(set(chosen)) >= max_members
        candidates = sorted(set(chosen)) if full else names
        pick = max(candidates, key=lambda name: _score((total + probs[name]) / (len(chosen) + 1), labels))
        total += probs[pick]
        chosen.append(pick)
        score = _score(total / len(chosen), labels)
        if score > best[:2]:
            best = (*score, len(chosen))
    members = chosen[:best[2]]
    return {name: members.count(name) for name in dict.fromkeys(members)}


def _score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy, then minus the log-loss: larger is better."""
    return _accuracy(probs, labels), -log_loss(labels, probs, eps=1e-12)


def weighted_mean(probs: dict[str, np.ndarray], weights: dict[str, int]) -> np.ndarray:
    return sum(probs[name] * w for name, w in weights.items()) / sum(weights.values())


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probs.argmax(1) == labels))


def teacher_ensemble(checkpoints: Sequence[str | Path], data: FaceData, cache_dir: Path, *,
                     training: bool = True, max_members: int | None = None) -> dict:
    """Cache every member, choose the ensemble and its temperature on PublicTest, report PrivateTest once.

    Returns a JSON-ready record: each member's accuracy, the uniform mean of all members, the chosen
    weights and temperature, and the cache files (a student reads its targets from them; not with
    ``training=False``, which leaves Training out of the caches and of the members' figures).
    """
    from ..training.store import existing_run_file
    from .metrics import bootstrap_accuracy_ci

    names = [member_name(existing_run_file(c)) for c in checkpoints]
    if len(set(names)) < len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise FerkitError(f"two teachers would share the name {', '.join(twice)} (a checkpoint's stem, a run's "
                          "folder): rename or copy one")
    paths = [_cache(c, data, cache_dir, training) for c in checkpoints]
    labels = {split: np.asarray(data.split(split).labels) for split in ("PublicTest", "PrivateTest")}
    probs = {split: load_cache(paths, split) for split in labels}
    weights = select_ensemble(probs["PublicTest"], labels["PublicTest"], max_members=max_members)
    uniform = dict.fromkeys(probs["PublicTest"], 1)
    temperature = fit_temperature(weighted_mean(probs["PublicTest"], weights), labels["PublicTest"])

    def scores(chosen: dict[str, int]) -> dict:
        out = {}
        for split, y in labels.items():
            mean = weighted_mean(probs[split], chosen)
            out[split] = {"accuracy": _accuracy(mean, y), "ci95": list(bootstrap_accuracy_ci(y, mean.argmax(1))),
                          "log_loss": log_loss(y, mean, eps=1e-12)}
        return out

    members = {name: {split: _accuracy(probs[split][name], y) for split, y in labels.items()} for name in uniform}
    if training:
        train_labels = np.asarray(data.split("Training").labels)
        for path in paths:
            members[Path(path).stem]["Training"] = _accuracy(_mean_with_mirror(path), train_labels)
    return {"members": dict(sorted(members.items())), "training": training,
            "uniform_mean": scores(uniform), "selected": {"weights": weights, **scores(weights)},
            "temperature": temperature, "cache": {Path(p).stem: str(Path(p).resolve()) for p in paths},
            "labels": list(data.label_names),
            "chosen_on": "PublicTest (members, weights and temperature); PrivateTest only reported"}


def _mean_with_mirror(cache: Path) -> np.ndarray:
    """A member's cached Training probabilities, each face's and its mirror's averaged (what a student reads)."""
    with np.load(cache) as cached:
        return (cached["Training"].astype(np.float32) + cached["Training_flip"]) / 2


def cached_targets(record: dict, train_faces: np.ndarray) -> np.ndarray:
    """The chosen ensemble's probabilities on ``train_faces``, each face's and its mirror's averaged (labels
    do not change with a flip, so the target fits whichever the augmentation shows); float32 ``(N, K)``.

    ``record`` is what :func:`teacher_ensemble` returned (``ferkit teachers --out``); the cache must have been
    made on these very faces, in this order.
    """
    weights, wanted = record["selected"]["weights"], faces_sha256(train_faces)
    total = 0.0
    for name, weight in weights.items():
        with np.load(record["cache"][name]) as cached:
            if "training_faces_sha256" not in cached:
                raise FerkitError(f"{record['cache'][name]}: no Training probabilities (cached by ferkit teachers "
                                  "--no-training): run ferkit teachers without --no-training to distil from it")
            if str(cached["training_faces_sha256"]) != wanted:
                raise FerkitError(f"{record['cache'][name]}: cached on other Training faces than this run's "
                                  "(another data file, or a train_limit/val split): run ferkit teachers on them")
        total = total + weight * _mean_with_mirror(record["cache"][name])
    return (total / sum(weights.values())).astype(np.float32)
