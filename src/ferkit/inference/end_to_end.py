"""End-to-end evaluation on labelled photos: the face detector first, then the classifier, as ``ferkit predict`` runs.

A folder of uncropped photos (``<root>/<class>/<photos>``, e.g. KDEF or JAFFE as distributed) says more about a
model in use than its cropped test faces do: the detector's box, not a data set's hand-made crop, decides what the
classifier sees. Each photo's largest face is cut as the recognizer cuts it; a photo where no face is found counts
as wrong in the end-to-end accuracy and is listed by name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.dataset import FaceData
from ..data.folder import folder_files
from ..errors import FerkitError
from .faces import DEFAULT_MARGIN, face_crops, largest_face
from .images import load_rgb
from .options import Options

if TYPE_CHECKING:
    from ..evaluation.report import ClassificationReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectedPhotos:
    """The largest face of each photo where one was found (``faces``), and the photos without one (``no_face``)."""

    faces: FaceData
    photos: int
    no_face: tuple[str, ...]

    def end_to_end_accuracy(self, report: ClassificationReport) -> float:
        """The share of all photos, those without a face included, whose largest face ``report`` gets right."""
        return float(np.sum(report.y_true == report.y_pred)) / self.photos

    def add_to(self, report: ClassificationReport) -> None:
        """Put the end-to-end accuracy and the share of photos with a face into ``report.extras``."""
        report.extras |= {"end_to_end_accuracy": self.end_to_end_accuracy(report),
                          "photos_with_a_face": len(self.faces) / self.photos}

    def describe(self, root: str | os.PathLike) -> str:
        """What was scored, for a report's title and a record: the folder, the detector and the faces found."""
        return (f"{root} [largest face of each photo, {self.faces.meta['detector']}: found in {len(self.faces)} "
                f"of {self.photos} photos]")


def detect_photos(root: str | os.PathLike, options: Options, size: int, *, contempt: bool = False,
                  margin: float = DEFAULT_MARGIN) -> DetectedPhotos:
    """Find the faces of every photo under ``root`` with ``options``' detector; keep each photo's largest, cut to
    ``size`` px gray with ``margin`` and ``options.align``, as :class:`~ferkit.inference.Recognizer` cuts them."""
    root = Path(root)
    paths, labels, names = folder_files(root, contempt=contempt)
    detector = options.face_detector()
    crops, kept, missed = [], [], []
    for i, path in enumerate(paths):
        rgb = load_rgb(path)
        found = detector(rgb)
        if not found:
            missed.append(path.relative_to(root).as_posix())
            continue
        crops.extend(face_crops(rgb, [largest_face(found)], size, margin=margin, align=options.align))
        kept.append(i)
    log.info("%s: a face found in %d of %d photos", root, len(kept), len(paths))
    if not kept:
        raise FerkitError(f"{root}: no face found in any of its {len(paths)} photos")
    faces = FaceData(
        images=np.stack(crops),
        labels=np.array([labels[i] for i in kept], dtype=np.int64),
        label_names=names,
        sources=np.array([paths[i].relative_to(root).as_posix() for i in kept]),
        meta={"source": str(root), "format": "folder", "detector": options.detector},
    )
    return DetectedPhotos(faces=faces, photos=len(paths), no_face=tuple(missed))
