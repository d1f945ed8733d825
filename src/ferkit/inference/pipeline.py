"""The one analysis path for videos: frames in, per-frame results out to *sinks*, whichever front end asks.

:func:`run_video` decodes, detects, classifies and tracks each frame (:func:`~ferkit.inference.video.track_video`)
and hands every ``(frame, result)`` to its sinks in order: a table of rows (:class:`TableSink`, the one row
schema of :mod:`ferkit.inference.rows`), an annotated H.264 video drawn and encoded on a thread of its own
(:class:`AnnotatedVideo`), the emotion-over-time plot (:class:`TimelineSink`), rows kept in memory
(:class:`RowsSink`, for ``ferkit batch``). ``ferkit predict``, ``ferkit batch``, the service's video jobs and
the Python API all run it; :func:`analyze_video` is the common case.

Memory stays flat however long the video: frames are read a few ahead and dropped once drawn, tables
are written row by row and the plot keeps a bounded summary. Every file is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

from .draw import draw_faces
from .faces import face_square
from .images import load_rgb, save_rgb
from .results import ImageResult
from .rows import result_rows, row_columns
from .tables import TABLE_FORMATS, TableWriter
from .threads import Behind
from .timeline import EmotionTimeline, TrackStats
from .video import Frame, VideoInfo, VideoReader, VideoSource, VideoWriter, track_video

if TYPE_CHECKING:
    from .recognizer import Recognizer

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where a video's results go: entered before the first frame, given every frame in order, exited at the end
    (with the error, if the run failed: a sink then leaves no file behind)."""

    def __enter__(self) -> Sink: ...

    def write(self, frame: Frame, result: ImageResult) -> None: ...

    def __exit__(self, exc_type, exc, tb) -> Any: ...


class TableSink:
    """The rows of every frame (:func:`~ferkit.inference.rows.result_rows`) written to a table file as they come."""

    def __init__(self, path: str | os.PathLike, labels: Sequence[str], fmt: str | None = None,
                 source: str | None = None) -> None:
        self.labels, self.source = tuple(labels), source
        self.table = TableWriter(path, row_columns(self.labels), fmt)

    def __enter__(self) -> TableSink:
        self.table.__enter__()
        return self

    def write(self, frame: Frame, result: ImageResult) -> None:
        self.table.write_rows(result_rows(result, self.labels, self.source))

    def __exit__(self, exc_type, exc, tb) -> Any:
        return self.table.__exit__(exc_type, exc, tb)


class RowsSink:
    """The rows of every frame kept in :attr:`rows` (for outputs assembled in memory, such as a batch part)."""

    def __init__(self, labels: Sequence[str], source: str | None = None) -> None:
        self.labels, self.source = tuple(labels), source
        self.rows: list[dict[str, Any]] = []

    def __enter__(self) -> RowsSink:
        return self

    def write(self, frame: Frame, result: ImageResult) -> None:
        self.rows.extend(result_rows(result, self.labels, self.source))

    def __exit__(self, exc_type, exc, tb) -> None:
        return None


class AnnotatedVideo:
    """Every frame with its faces drawn, as an MP4 at ``fps``; drawing and encoding run on a thread of their own."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        self.video = VideoWriter(path, fps=fps, size=size)
        self._behind: Behind | None = None

    def __enter__(self) -> AnnotatedVideo:
        self.video.__enter__()
        self._behind = Behind(lambda item: self.video.write(draw_faces(*item)), size=8, name="ferkit-encode")
        return self

    def write(self, frame: Frame, result: ImageResult) -> None:
        self._behind.put((frame.rgb, result.faces))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._behind.__exit__(exc_type, exc, tb)  # waits for the frames still queued
        except BaseException as err:
            self.video.__exit__(type(err), err, err.__traceback__)
            raise
        self.video.__exit__(exc_type, exc, tb)


class TimelineSink:
    """Each track's emotions over time (:class:`EmotionTimeline`); the plot is saved to ``path`` when the run ends
    well (None: no plot, only :attr:`timeline`'s statistics)."""

    def __init__(self, labels: Sequence[str], path: str | os.PathLike | None = None, title: str = "") -> None:
        self.timeline = EmotionTimeline(labels)
        self.path, self.title = path, title

    def __enter__(self) -> TimelineSink:
        return self

    def write(self, frame: Frame, result: ImageResult) -> None:
        self.timeline.add(result)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.path is not None:
            self.timeline.save(self.path, title=self.title)


@dataclass(slots=True)
class VideoSummary:
    """What :func:`run_video` did: frames analysed, faces, tracks and the files it wrote."""

    info: VideoInfo
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    seconds: float = 0.0
    tracks: list[TrackStats] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Analysed frames per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_text(self, max_tracks: int = 10) -> str:
        """One line for the video, then one per track (the ``max_tracks`` most seen)."""
        lines = [f"{Path(self.info.source).name}: {self.frames} frame(s) analysed, {self.frames_with_faces} with "
                 f"faces, {len(self.tracks)} track(s), {self.frames_per_second:.1f} frames/s"]
        lines += [f"  track {t.track}: {t.frames} frame(s), {t.start_s:.2f}-{t.end_s:.2f} s, mostly {t.label} "
                  f"({t.label_frames.get(t.label, 0)} of {t.frames} frames; mean probability "
                  f"{t.mean_scores[t.label]:.0%})" for t in self.tracks[:max_tracks]]
        if len(self.tracks) > max_tracks:
            lines.append(f"  ... and {len(self.tracks) - max_tracks} shorter track(s)")
        return "\n".join(lines)


def run_video(recognizer: Recognizer, reader: VideoReader, sinks: Sequence[Sink], *,
              on_frame: Callable[[int], None] | None = None, progress: bool = False) -> VideoSummary:
    """Analyse every frame of an open ``reader`` (see :func:`track_video`) into ``sinks``; the reader is closed.

    ``on_frame(n)`` is called after the n-th analysed frame (progress; it may raise to stop the run, and
    the sinks then leave no files). A :class:`TimelineSink` among the sinks gives the summary its tracks.
    """
    summary = VideoSummary(info=reader.info)
    total = -(-reader.info.frames // reader.stride) if reader.info.frames else None
    start = time.perf_counter()
    with reader, contextlib.ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        bar = stack.enter_context(tqdm(total=total, desc=Path(reader.info.source).name, unit="frame", leave=False,
                                       dynamic_ncols=True, disable=None if progress else True))
        for frame, result in stack.enter_context(contextlib.closing(track_video(recognizer, reader))):
            for sink in sinks:
                sink.write(frame, result)
            summary.frames += 1
            summary.faces += len(result.faces)
            summary.frames_with_faces += bool(result.faces)
            bar.update()
            if on_frame is not None:
                on_frame(summary.frames)
    summary.seconds = time.perf_counter() - start
    summary.tracks = next((s.timeline.stats() for s in sinks if isinstance(s, TimelineSink)), [])
    log.info("%s: %d frame(s) in %.1f s (%.1f frames/s), %d face(s), %d track(s)", reader.info.source,
             summary.frames, summary.seconds, summary.frames_per_second, summary.faces, len(summary.tracks))
    return summary


def annotated_path(folder: str | os.PathLike, name: str, path: str | os.PathLike) -> Path:
    """Where the annotated copy of the photo or video ``path`` goes: ``folder/<name>_annotated.<png|jpg|mp4>``."""
    from .video import is_video_file

    suffix = ".mp4" if is_video_file(path) else _image_suffix(path)
    return Path(folder) / f"{name}_annotated{suffix}"


def _image_suffix(path: str | os.PathLike) -> str:
    """The suffix of an image written from the photo ``path``: PNG stays PNG, everything else becomes JPEG."""
    return ".png" if Path(path).suffix.lower() == ".png" else ".jpg"


def face_path(folder: str | os.PathLike, name: str, index: int, path: str | os.PathLike) -> Path:
    """Where face ``index`` (the results table's ``face`` column) of the photo ``path`` is saved:
    ``folder/<name>_face<index>.<png|jpg>``."""
    return Path(folder) / f"{name}_face{index}{_image_suffix(path)}"


def analyze_photo(recognizer: Recognizer, path: str | os.PathLike, annotate_dir: str | os.PathLike | None = None,
                  name: str | None = None, faces_dir: str | os.PathLike | None = None) -> ImageResult:
    """The faces of the photo at ``path`` (read once); with ``annotate_dir`` its annotated copy is written there
    (:func:`annotated_path`, ``name`` defaulting to the file's stem), with ``faces_dir`` each face's square, in
    the photo's colours and resolution (:func:`face_path`)."""
    rgb = load_rgb(path)
    result = recognizer(rgb)
    result.path = str(path)
    name = name or Path(path).stem
    if annotate_dir is not None:
        save_rgb(annotated_path(annotate_dir, name, path), draw_faces(rgb, result.faces))
    for index, face in enumerate(result.faces if faces_dir is not None else []):
        save_rgb(face_path(faces_dir, name, index, path), face_square(rgb, face.box, recognizer.margin))
    return result


def open_video(recognizer: Recognizer, source: VideoSource | VideoReader) -> VideoReader:
    """``source`` opened with the recognizer's frame stride (:attr:`Options.stride`), or an open reader as it is."""
    return source if isinstance(source, VideoReader) else VideoReader(source, stride=recognizer.options.stride)


def analyze_video(recognizer: Recognizer, source: VideoSource | VideoReader, out_dir: str | os.PathLike, *,
                  table_format: str = "csv", annotate: bool = True, plot: bool = True, name: str | None = None,
                  progress: bool = False, on_frame: Callable[[int], None] | None = None) -> VideoSummary:
    """Classify and track the faces of every frame of a video (or camera) and write the results into ``out_dir``.

    Under ``name`` (default: the file's stem, or ``camera<N>``): ``<name>_frames.<csv|json|jsonl|parquet>``
    (the rows of :mod:`~ferkit.inference.rows`), ``<name>_annotated.mp4`` (every analysed frame with boxes,
    track ids and labels, at the source's rate divided by the stride) and ``<name>_emotions.png`` (emotion
    over time per track). Stride, key frames and smoothing are the recognizer's :attr:`~Recognizer.options`;
    pass an open :class:`VideoReader` for another stride. Each file appears only once complete.
    """
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {table_format!r}; valid formats: {', '.join(TABLE_FORMATS)}")
    reader = open_video(recognizer, source)
    info = reader.info
    if name is None:
        name = f"camera{info.source.split()[-1]}" if reader.is_camera else Path(info.source).stem
    out = Path(out_dir)
    paths = {"table": out / f"{name}_frames{TABLE_FORMATS[table_format]}"}
    sinks: list[Sink] = [TableSink(paths["table"], recognizer.labels, table_format)]
    if annotate:
        paths["video"] = out / f"{name}_annotated.mp4"
        sinks.append(AnnotatedVideo(paths["video"], info.fps / reader.stride, (info.width, info.height)))
    if plot:
        paths["plot"] = out / f"{name}_emotions.png"
    sinks.append(TimelineSink(recognizer.labels, paths.get("plot"),
                              f"{Path(info.source).name}: emotion over time per tracked face"))
    summary = run_video(recognizer, reader, sinks, on_frame=on_frame, progress=progress)
    summary.outputs = paths
    return summary
