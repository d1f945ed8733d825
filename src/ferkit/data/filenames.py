"""File-name conventions of KDEF, JAFFE and CK+ (subject, expression, pose), and a KDEF tree reader."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FerkitError
from ..labels import EMOTIONS, canonical_label
from .dataset import FaceData
from .images import is_image_name, list_files, load_images

log = logging.getLogger(__name__)

#: KDEF expression codes and their meaning.
KDEF_EXPRESSIONS: dict[str, str] = {
    "AF": "afraid",
    "AN": "angry",
    "DI": "disgusted",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprised",
}
#: KDEF camera angles: full left, half left, straight, half right, full right.
KDEF_ANGLES: dict[str, str] = {
    "FL": "full left",
    "HL": "half left",
    "S": "straight",
    "HR": "half right",
    "FR": "full right",
}
#: JAFFE expression codes and their meaning.
JAFFE_EXPRESSIONS: dict[str, str] = {
    "AN": "angry",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}

_EXT = r"\.(?:png|jpe?g|bmp|tiff?|gif|webp|pgm|ppm)"
_KDEF = re.compile(rf"([AB])([FM])(\d{{2}})(AF|AN|DI|HA|NE|SA|SU)(FL|HL|S|HR|FR){_EXT}", re.IGNORECASE)
_JAFFE = re.compile(rf"([A-Z]{{2}})\.(AN|DI|FE|HA|NE|SA|SU)(\d+)\.(\d+){_EXT}", re.IGNORECASE)
_CKPLUS = re.compile(rf"S(\d+)_(\d+)_(\d+){_EXT}", re.IGNORECASE)


@dataclass(frozen=True)
class KdefName:
    """A KDEF name such as ``AF01ANS.JPG``: session A/B, sex F/M, subject number, expression, angle."""

    session: str
    sex: str
    number: int
    expression: str
    angle: str

    @property
    def subject(self) -> str:
        """Subject id: sex + two-digit number (``F01``); the same person in both sessions."""
        return f"{self.sex}{self.number:02d}"

    @property
    def label(self) -> str:
        """Canonical emotion label."""
        return canonical_label(KDEF_EXPRESSIONS[self.expression])


@dataclass(frozen=True)
class JaffeName:
    """A JAFFE name such as ``KA.AN1.39.tiff``: subject initials, expression, sample and image number."""

    subject: str
    expression: str
    sample: int
    image: int

    @property
    def label(self) -> str:
        """Canonical emotion label."""
        return canonical_label(JAFFE_EXPRESSIONS[self.expression])


@dataclass(frozen=True)
class CkplusName:
    """A CK+ name such as ``S005_001_00000011.png``: subject, sequence and frame numbers."""

    subject_number: int
    sequence: int
    frame: int

    @property
    def subject(self) -> str:
        """Subject id as CK+ writes it (``S005``)."""
        return f"S{self.subject_number:03d}"


def _match(pattern: re.Pattern, name: str | os.PathLike, what: str, example: str) -> re.Match:
    base = Path(name).name
    found = pattern.fullmatch(base)
    if found is None:
        raise FerkitError(f"{name}: not a {what} file name (expected a name like {example})")
    return found


def parse_kdef(name: str | os.PathLike) -> KdefName:
    """Parse a KDEF file name (folders in ``name`` are ignored); a bad name raises FerkitError."""
    session, sex, number, expr, angle = _match(_KDEF, name, "KDEF", "AF01ANS.JPG").groups()
    return KdefName(session.upper(), sex.upper(), int(number), expr.upper(), angle.upper())


def parse_jaffe(name: str | os.PathLike) -> JaffeName:
    """Parse a JAFFE file name; a bad name raises FerkitError."""
    subject, expr, sample, image = _match(_JAFFE, name, "JAFFE", "KA.AN1.39.tiff").groups()
    return JaffeName(subject.upper(), expr.upper(), int(sample), int(image))


def parse_ckplus(name: str | os.PathLike) -> CkplusName:
    """Parse a CK+ file name; a bad name raises FerkitError."""
    subject, sequence, frame = _match(_CKPLUS, name, "CK+", "S005_001_00000011.png").groups()
    return CkplusName(int(subject), int(sequence), int(frame))


def subject_from_name(name: str | os.PathLike) -> str | None:
    """Subject id when ``name`` follows the CK+, KDEF or JAFFE convention, else None."""
    for parse in (parse_ckplus, parse_kdef, parse_jaffe):
        try:
            return parse(name).subject
        except FerkitError:
            continue
    return None


def read_kdef(
    root: str | os.PathLike,
    angles: tuple[str, ...] = ("S",),
    *,
    sessions: tuple[str, ...] = ("A", "B"),
    size: int | None = 48,
) -> FaceData:
    """Read a KDEF tree (any nesting) keeping the camera ``angles`` asked for (FL, HL, S, HR, FR).

    Subject ids are sex + number (``F01``); ``sources`` are paths relative to ``root``; images
    are resized to ``size`` x ``size`` gray (KDEF photos are uncropped: crop faces first for
    FER-style models). Files without an image suffix are ignored; an image whose name is not
    a KDEF name raises a FerkitError naming it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FerkitError(f"KDEF folder not found: {root}")
    wanted = {a.upper() for a in angles}
    bad = sorted(wanted - set(KDEF_ANGLES))
    if bad or not wanted:
        raise FerkitError(f"unknown KDEF angle(s) {bad or list(angles)}; valid angles: {list(KDEF_ANGLES)}")
    want_sessions = {s.upper() for s in sessions}
    if not want_sessions or want_sessions - {"A", "B"}:
        raise FerkitError(f"KDEF sessions must be among ['A', 'B'], got {list(sessions)}")
    paths, names = [], []
    for path in list_files(root):
        if not is_image_name(path):
            log.debug("ignoring non-image file %s", path)
            continue
        parsed = parse_kdef(path)
        if parsed.angle in wanted and parsed.session in want_sessions:
            paths.append(path)
            names.append(parsed)
    if not paths:
        raise FerkitError(
            f"{root}: no KDEF images with angles {sorted(wanted)} and sessions {sorted(want_sessions)}"
        )
    images, _ = load_images(paths, size)
    return FaceData(
        images=images,
        labels=np.array([EMOTIONS.index(n.label) for n in names], dtype=np.int64),
        label_names=EMOTIONS,
        subjects=np.array([n.subject for n in names]),
        sources=np.array([p.relative_to(root).as_posix() for p in paths]),
        meta={
            "source": str(root),
            "format": "kdef",
            "angles": sorted(wanted),
            "sessions": sorted(want_sessions),
        },
    )
