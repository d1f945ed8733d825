"""The one canonical emotion vocabulary, with the aliases and dataset orders mapped onto it."""

from __future__ import annotations

from .errors import FerkitError

#: Canonical labels, in FER2013's index order (0-6). Every reader maps onto this tuple.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: CK+ and FER+ have an eighth class; it is appended after the canonical seven when kept.
CONTEMPT = "contempt"
EMOTIONS_WITH_CONTEMPT: tuple[str, ...] = (*EMOTIONS, CONTEMPT)

#: FER+ vote columns, in the order of ``fer2013new.csv``.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)

#: Names seen in data sets and folder trees, mapped to a canonical label.
ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "an": "angry", "ang": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust", "dis": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear", "afs": "fear",
    "happy": "happy", "happiness": "happy", "ha": "happy", "has": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad", "sas": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise", "sus": "surprise",
    "neutral": "neutral", "neutrality": "neutral", "ne": "neutral", "nes": "neutral", "calm": "neutral",
    "contempt": "contempt", "co": "contempt",
}


def canonical_label(name: str) -> str:
    """Map a data set's class name (any case, any known alias) to its canonical label."""
    key = name.strip().lower()
    if key not in ALIASES:
        known = ", ".join(sorted(set(ALIASES.values())))
        raise FerkitError(f"unknown emotion name {name!r}; known emotions: {known}")
    return ALIASES[key]


def label_index(name: str, labels: tuple[str, ...] = EMOTIONS) -> int:
    """Index of a (possibly aliased) emotion name in ``labels``."""
    canon = canonical_label(name)
    if canon not in labels:
        raise FerkitError(f"emotion {canon!r} is not one of the labels {list(labels)}")
    return labels.index(canon)


#: FER+ emotion column index -> canonical index (contempt -> 7, i.e. EMOTIONS_WITH_CONTEMPT order).
FERPLUS_TO_CANONICAL: tuple[int, ...] = tuple(
    EMOTIONS_WITH_CONTEMPT.index(canonical_label(name)) for name in FERPLUS_COLUMNS[:8]
)
