"""What identifies a cached ensemble member: its name (from its checkpoint's path) and the faces it was scored on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

#: Checkpoint names a training run writes: such a member is named after its run folder.
RUN_CHECKPOINTS = ("best", "last")


def faces_sha256(faces: np.ndarray) -> str:
    """A fingerprint of a face array (so cached rows are only ever matched to the same faces, in order)."""
    return hashlib.sha256(np.ascontiguousarray(faces).tobytes()).hexdigest()


def member_name(path: str | Path) -> str:
    """A member's name (its cache file's and record's): a checkpoint's stem (a published file kept in the run
    store, ``NAME-fp16.pt``: its published NAME), a run's ``best.pt`` its run folder's name, a folder of fold runs
    (a cross-fitted teacher) its name + ``_xfit``."""
    path = Path(path)
    if path.is_dir():
        return f"{path.name}_xfit"
    return path.parent.name if path.stem in RUN_CHECKPOINTS else path.stem.removesuffix("-fp16")
