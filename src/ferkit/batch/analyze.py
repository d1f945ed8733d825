"""One input in, its face rows out: the work that every engine does, on the driver or on a worker.

The rows are the one face table of :mod:`ferkit.inference.rows` (the same columns as ``ferkit predict``'s),
``source`` being the input's absolute path; a photo or frame without a face keeps one row with the face
columns empty. Videos go through the one video pipeline (:func:`ferkit.inference.run_video`): its key
frames and classifier batches depend only on the video, so every row is identical whichever engine,
part size or resume produced it.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import FerkitError
from ..inference.options import Options
from ..inference.pipeline import AnnotatedVideo, RowsSink, analyze_photo, annotated_path, open_video, run_video
from ..inference.recognizer import Recognizer
from ..inference.rows import result_rows, row_columns
from ..inference.sources import Source
from ..inference.tables import arrow_schema
from ..inference.video import photo_or_video

log = logging.getLogger(__name__)


def face_schema(labels: tuple[str, ...] | list[str]) -> pa.Schema:
    """The Arrow schema of the face rows for a model with these labels."""
    return arrow_schema(row_columns(labels))


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """What decides the rows, the recognition :class:`~ferkit.inference.Options`; and whether to annotate.

    A re-run into the same output folder must use the same options (checked by
    :class:`~ferkit.batch.store.BatchStore`); ``annotate`` may change. ``options`` may be given as
    the dict of :meth:`Options.to_dict` (as Ray hands it to a worker).
    """

    options: Options = field(default_factory=Options)
    annotate: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", Options(**self.options))

    def recognizer(self) -> Recognizer:
        """A new Recognizer for these settings (one per worker)."""
        return self.options.recognizer()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _found(rows: list[dict[str, Any]]) -> int:
    return sum(row["face"] is not None for row in rows)


def _photo(rec: Recognizer, source: Source, settings: BatchSettings, media_dir: Path | None):
    result = analyze_photo(rec, source.path, media_dir if settings.annotate else None, source.name)
    return "photo", 1, result_rows(result, rec.labels, source.path)


def _video(rec: Recognizer, source: Source, settings: BatchSettings, media_dir: Path | None):
    reader = open_video(rec, source.path)  # the recognizer's options: the settings' stride
    sinks: list = [RowsSink(rec.labels, source.path)]
    if settings.annotate and media_dir is not None:
        info = reader.info
        sinks.append(AnnotatedVideo(annotated_path(media_dir, source.name, source.path), info.fps / reader.stride,
                                    (info.width, info.height)))
    summary = run_video(rec, reader, sinks)
    return "video", summary.frames, sinks[0].rows


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
    return InputResult(source.path, kind, "done", frames, _found(rows), time.perf_counter() - start, None,
                       pa.Table.from_pylist(rows, schema=schema))
