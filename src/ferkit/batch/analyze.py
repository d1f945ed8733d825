"""One input in, its face rows out: the work that every engine does, on the driver or on a worker.

Rows (one per face; :func:`face_schema`):

========================  =====================================================================
``source``                the input's absolute path
``kind``                  ``photo`` or ``video``
``frame``                 0-based frame index in the video; 0 for a photo
``time_s``                the frame's time in seconds; null for a photo
``face``                  the face's index within its photo or frame (detector order, best first)
``track``                 the face's id across the frames of its video; null for a photo
``x``, ``y``, ``w``, ``h``  the face box in pixels of the photo or frame
``detector_score``        the detector's confidence, 0-1
``label``, ``confidence``  the most probable emotion and its probability
one column per label      the model's probabilities (float32, exactly as the model gave them)
========================  =====================================================================

An input without a face gives no row (its frame count is in the inputs table). The faces of
one photo, or of one video frame, are classified as one batch, never together with the faces
of other inputs: the model's last bits depend on the batch it runs in, so this keeps every row
identical whichever engine, batch size or resume produced it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from ..errors import FerkitError
from ..inference.detectors import DEFAULT_DETECTOR, list_detectors
from ..inference.draw import draw_faces
from ..inference.images import load_rgb, save_rgb
from ..inference.recognizer import Recognizer
from ..inference.results import ImageResult
from ..inference.tracking import FaceTracker
from ..inference.video import VideoReader, VideoWriter, photo_or_video, track_video
from .inputs import Source

log = logging.getLogger(__name__)

#: Columns before the per-label probabilities, in order.
LEADING_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("source", pa.string()), ("kind", pa.string()), ("frame", pa.int64()), ("time_s", pa.float64()),
    ("face", pa.int64()), ("track", pa.int64()), ("x", pa.int64()), ("y", pa.int64()), ("w", pa.int64()),
    ("h", pa.int64()), ("detector_score", pa.float64()), ("label", pa.string()), ("confidence", pa.float32()),
)
#: The order in which rows are sorted everywhere (parts, :func:`~ferkit.batch.store.read_faces`).
SORT_KEYS = ("source", "frame", "face")


def face_schema(labels: tuple[str, ...] | list[str]) -> pa.Schema:
    """The Arrow schema of the face rows for a model with these labels."""
    return pa.schema([*LEADING_COLUMNS, *((label, pa.float32()) for label in labels)])


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """What decides the rows: model checkpoint (None: the shipped one), detector, video stride; and annotation.

    A re-run into the same output folder must use the same model, detector and stride
    (checked by :class:`~ferkit.batch.store.BatchStore`); ``annotate`` may change.
    """

    model: str | None = None
    detector: str = DEFAULT_DETECTOR
    stride: int = 1
    annotate: bool = False

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be 1 or more, got {self.stride}")
        if self.detector not in list_detectors():
            raise ValueError(f"unknown face detector {self.detector!r}; valid detectors: {', '.join(list_detectors())}")

    def recognizer(self) -> Recognizer:
        """A new Recognizer for these settings (one per worker)."""
        return Recognizer(checkpoint=self.model, detector=self.detector)


@dataclass(slots=True)
class InputResult:
    """What became of one input: ``status`` ``done`` (with ``rows``) or ``failed`` (with ``error``)."""

    source: str
    kind: str
    status: str
    frames: int
    faces: int
    seconds: float
    error: str | None
    rows: pa.Table

    def record(self) -> dict[str, Any]:
        """The input's line in the inputs table (everything but the rows)."""
        return {"source": self.source, "kind": self.kind, "status": self.status, "frames": self.frames,
                "faces": self.faces, "seconds": round(self.seconds, 4), "error": self.error}

    def to_wire(self) -> dict[str, Any]:
        """Plain types for sending between processes: the record plus the rows as Arrow IPC bytes."""
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, self.rows.schema) as writer:
            writer.write_table(self.rows)
        return {**self.record(), "seconds": self.seconds, "rows": sink.getvalue()}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> InputResult:
        """The inverse of :meth:`to_wire`."""
        rows = pa.ipc.open_stream(d["rows"]).read_all()
        return cls(source=d["source"], kind=d["kind"], status=d["status"], frames=int(d["frames"]),
                   faces=int(d["faces"]), seconds=float(d["seconds"]), error=d["error"], rows=rows)


def _rows(source: str, kind: str, result: ImageResult, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    frame = result.frame if result.frame is not None else 0
    rows = []
    for i, face in enumerate(result.faces):
        x, y, w, h = face.box
        rows.append({"source": source, "kind": kind, "frame": frame, "time_s": result.time_s, "face": i,
                     "track": face.track, "x": x, "y": y, "w": w, "h": h, "detector_score": face.detector_score,
                     "label": face.label, "confidence": face.confidence,
                     **{label: face.scores[label] for label in labels}})
    return rows


def _media_path(media_dir: Path, source: Source, suffix: str) -> Path:
    return media_dir / f"{source.name}_annotated{suffix}"


def _photo(rec: Recognizer, source: Source, settings: BatchSettings, media_dir: Path | None):
    rgb = load_rgb(source.path)
    result = rec(rgb)
    if settings.annotate and media_dir is not None:
        suffix = Path(source.path).suffix.lower()
        save_rgb(_media_path(media_dir, source, suffix if suffix in {".png", ".jpg"} else ".jpg"),
                 draw_faces(rgb, result.faces))
    return "photo", 1, _rows(source.path, "photo", result, rec.labels)


def _video(rec: Recognizer, source: Source, settings: BatchSettings, media_dir: Path | None):
    rows: list[dict[str, Any]] = []
    frames = 0
    with VideoReader(source.path, stride=settings.stride) as reader, contextlib.ExitStack() as stack:
        info = reader.info
        video = None
        if settings.annotate and media_dir is not None:
            video = stack.enter_context(VideoWriter(_media_path(media_dir, source, ".mp4"),
                                                    fps=info.fps / reader.stride, size=(info.width, info.height)))
        # detection ahead on at most as many threads as this process computes with (1 per CPU of a Ray worker)
        threads = max(1, min(2, torch.get_num_threads()))
        for frame, result in track_video(rec, reader, FaceTracker(), detect_threads=threads):
            rows.extend(_rows(source.path, "video", result, rec.labels))
            frames += 1
            if video is not None:
                video.write(draw_faces(frame.rgb, result.faces))
    return "video", frames, rows


def _either(rec: Recognizer, source: Source, settings: BatchSettings, media_dir: Path | None):
    return photo_or_video(source.path, lambda: _photo(rec, source, settings, media_dir),
                          lambda: _video(rec, source, settings, media_dir))


def analyze_source(rec: Recognizer, source: Source, settings: BatchSettings,
                   media_dir: str | Path | None = None) -> InputResult:
    """Find, classify (and for videos track) every face of ``source``; never raises for a bad input.

    A problem with the input (missing, empty, not decodable, ...) or any other error while
    analysing it gives a ``failed`` result with the reason. Annotated copies go to
    ``media_dir/<name>_annotated.<jpg|png|mp4>`` when ``settings.annotate`` is set.
    """
    start = time.perf_counter()
    schema = face_schema(rec.labels)
    media = Path(media_dir) if media_dir is not None else None
    analyze = {"photo": _photo, "video": _video}.get(source.kind, _either)
    try:
        kind, frames, rows = analyze(rec, source, settings, media)
    except Exception as exc:  # noqa: BLE001 - one bad input must never stop the job
        error = str(exc) if isinstance(exc, FerkitError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, FerkitError):
            log.warning("%s: unexpected error: %s", source.path, error, exc_info=log.isEnabledFor(logging.DEBUG))
        return InputResult(source.path, source.kind, "failed", 0, 0, time.perf_counter() - start, error,
                           schema.empty_table())
    return InputResult(source.path, kind, "done", frames, len(rows), time.perf_counter() - start, None,
                       pa.Table.from_pylist(rows, schema=schema))
