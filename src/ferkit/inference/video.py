"""Videos and cameras: frames read one at a time, faces tracked and classified, results streamed to files.

Memory stays flat however long the video: :class:`VideoReader` yields one frame at a time and
nothing keeps frames; the per-frame table is written row by row, the annotated video frame by
frame, and the emotion-over-time plot keeps a bounded summary (:class:`EmotionTimeline`).
Every output is written to a temporary file and renamed when complete, so an interrupted run
leaves no half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import FerkitError
from ..io import existing_file
from .detectors import Detection, Detector
from .draw import draw_faces
from .encoders import Encoder, open_encoder
from .results import ImageResult, frame_columns, frame_rows
from .tables import TABLE_FORMATS, TableWriter
from .timeline import EmotionTimeline, TrackStats
from .tracking import FaceTracker

if TYPE_CHECKING:
    from .recognizer import Recognizer

log = logging.getLogger(__name__)

#: File suffixes taken for videos without opening them (OpenCV reads more; see :func:`is_video_file`).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".3gp", ".ts", ".mts", ".ogv"})

VideoSource = str | os.PathLike | int


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path``'s suffix is a video one (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A video's source name, frame rate (0 when unknown), size, and frame count as the container reports it.

    ``frames`` is the container's estimate (None for cameras or when it has none); the frames
    actually readable can differ by a few.
    """

    source: str
    fps: float
    width: int
    height: int
    frames: int | None


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: its 0-based index in the source, its time in seconds, and its pixels (RGB uint8)."""

    index: int
    time_s: float
    rgb: np.ndarray


@contextlib.contextmanager
def _opencv_errors_only() -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. about missing cameras) for the block, then restore them."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def photo_or_video(path: str | os.PathLike, as_photo, as_video):
    """``as_photo()``, or where that raises a FerkitError ``as_video()``: for an input whose suffix names neither;
    a FerkitError naming ``path`` when both fail."""
    try:
        return as_photo()
    except FerkitError:
        try:
            return as_video()
        except FerkitError:
            raise FerkitError(f"{path}: neither a photo nor a video that OpenCV can read") from None


def open_capture(source: str | int) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on a file (through FFmpeg) or a camera index, without FFmpeg's or OpenCV's chatter.

    A damaged file would otherwise print FFmpeg's own complaints ("moov atom not found") to the
    terminal beside ferkit's clear error. ``OPENCV_FFMPEG_LOGLEVEL`` is read at the process's
    first capture, so every capture should be opened here; a value the user set is kept.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    with _opencv_errors_only():
        return cv2.VideoCapture(source) if isinstance(source, int) else cv2.VideoCapture(source, cv2.CAP_FFMPEG)


class VideoReader:
    """The frames of a video file (anything OpenCV's FFmpeg reads) or a camera (an int index).

    Opening checks the source and reads its first frame, so a missing, empty, damaged or
    frameless video raises a :class:`FerkitError` naming it here, before any work is done.
    Iterating yields :class:`Frame` objects one at a time, every ``stride``-th frame (skipped
    frames are grabbed, not decoded to pixels); a reader can be iterated once.

    >>> with VideoReader("clip.mp4", stride=2) as reader:
    ...     for frame in reader:
    ...         print(frame.index, frame.time_s, frame.rgb.shape)
    """

    def __init__(self, source: VideoSource, *, stride: int = 1) -> None:
        if isinstance(source, bool):
            raise TypeError(f"expected a video path or a camera index, got {source!r}")
        if int(stride) < 1:
            raise ValueError(f"stride must be 1 or more, got {stride}")
        self.stride = int(stride)
        self.is_camera = isinstance(source, int)
        if self.is_camera:
            name = f"camera {source}"
            cap = open_capture(source)
            if not cap.isOpened():
                raise FerkitError(f"could not open {name} (no camera with that index, or it is in use)")
        else:
            path = existing_file(source, "video")
            name = str(path)
            cap = open_capture(name)
            if not cap.isOpened():
                raise FerkitError(f"{name}: not a video that OpenCV can read (or the file is damaged)")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            why = "the camera gave no picture" if self.is_camera else "the video is empty or damaged"
            raise FerkitError(f"{name}: no frames could be read ({why})")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.info = VideoInfo(
            source=name,
            fps=float(fps) if 0 < fps <= 1000 else 0.0,
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            frames=int(count) if not self.is_camera and 0 < count < 1e9 else None,
        )
        self.frames_read = 0
        self._cap: cv2.VideoCapture | None = cap
        self._first: np.ndarray | None = first
        self._started = False

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the file or camera (also done when iteration ends)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _time(self, index: int, start: float) -> float:
        if self.is_camera:
            return time.monotonic() - start
        if self.info.fps > 0:
            return index / self.info.fps
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"{self.info.source}: a VideoReader can be iterated only once")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        bgr, self._first = self._first, None
        index, start = 0, time.monotonic()
        try:
            while bgr is not None and self._cap is not None:
                self.frames_read += 1
                yield Frame(index, self._time(index, start), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                bgr = None
                skipped = 0
                while skipped < self.stride - 1 and self._cap.grab():
                    skipped += 1
                self.frames_read += skipped
                index += skipped + 1
                if skipped == self.stride - 1:
                    ok, bgr = self._cap.read()
                    bgr = bgr if ok else None
        finally:
            self.close()
        expected = self.info.frames
        if expected and self.frames_read < 0.9 * expected:
            log.warning("%s: the video ended after %d of about %d frames (truncated or damaged?)",
                        self.info.source, self.frames_read, expected)


def read_frames(source: VideoSource, *, stride: int = 1) -> Iterator[Frame]:
    """Every ``stride``-th frame of ``source``, one at a time (a generator; see :class:`VideoReader`)."""
    with VideoReader(source, stride=stride) as reader:
        yield from reader


class VideoWriter:
    """An MP4 written frame by frame to a hidden temporary file, renamed to ``path`` on success.

    H.264 where PyAV is installed (browsers play it), else MPEG-4 Part 2 (see
    :mod:`ferkit.inference.encoders`); ``codec`` forces one (``h264`` or ``mp4v``).

    >>> with VideoWriter("out.mp4", fps=30, size=(640, 360)) as video:
    ...     video.write(rgb)
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, size: tuple[int, int], codec: str = "auto") -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps > 0 else 30.0
        self.size = (int(size[0]), int(size[1]))
        self.codec = codec
        self.frames_written = 0
        self._tmp: str | None = None
        self._encoder: Encoder | None = None

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                         dir=self.path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        try:
            self._encoder = open_encoder(self._tmp, self.fps, self.size, self.codec)
        except BaseException:
            self.__exit__(FerkitError, None, None)
            raise
        self.codec = self._encoder.codec
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB frame (resized to the video's size if it differs)."""
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._encoder.write(rgb)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        complete = exc_type is None
        try:
            if self._encoder is not None:
                self._encoder.close()
        except Exception:
            complete = False
            if exc_type is None:
                raise
        finally:
            self._encoder = None
            if self._tmp is not None:
                if complete and os.path.exists(self._tmp):
                    os.replace(self._tmp, self.path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._tmp)
                self._tmp = None


def default_detect_threads(reader: VideoReader) -> int:
    """Detection threads :func:`track_video` uses by default: up to 2 for a file (one per core), 1 for a camera
    (detecting ahead would add a frame of latency to a live view)."""
    return 1 if reader.is_camera else max(1, min(2, os.cpu_count() or 1))


def _detected(detector: Detector, frames: Iterable[Frame], threads: int) -> Iterator[tuple[Frame, list[Detection]]]:
    """``frames`` with their detections, in order; with ``threads`` > 1 (and a thread-safe detector) the next
    frames are detected on other threads meanwhile, at most ``threads`` frames ahead (memory stays bounded)."""
    frames = iter(frames)
    if threads <= 1 or not getattr(detector, "thread_safe", False):
        for frame in frames:
            yield frame, detector(frame.rgb)
        return
    first = next(frames, None)
    if first is None:
        return
    yield first, detector(first.rgb)  # once on this thread first: a detector may set itself up on its first call
    ahead: deque[tuple[Frame, Future]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="ferkit-detect") as pool:
        try:
            for frame in frames:
                ahead.append((frame, pool.submit(detector, frame.rgb)))
                if len(ahead) > threads:
                    done, future = ahead.popleft()
                    yield done, future.result()
            while ahead:
                done, future = ahead.popleft()
                yield done, future.result()
        finally:
            for _, future in ahead:  # the consumer stopped early: drop the frames detected ahead
                future.cancel()


def track_video(recognizer: Recognizer, reader: VideoReader, tracker: FaceTracker | None = None, *,
                detect_threads: int | None = None) -> Iterator[tuple[Frame, ImageResult]]:
    """Each frame of an open ``reader`` with its faces classified and tracked (a generator).

    Each :class:`ImageResult` has the video as ``path``, ``frame`` and ``time_s`` set and a
    ``track`` id on each face; ``tracker`` (default: a new :class:`FaceTracker`) sets the
    matching and smoothing options. Faces are detected ``detect_threads`` frames at a time on
    worker threads (default :func:`default_detect_threads`; 1 = in this thread); the results, and
    their order, are the same as ``recognizer(frame.rgb)`` frame by frame.
    """
    tracker = tracker or FaceTracker()
    threads = default_detect_threads(reader) if detect_threads is None else int(detect_threads)
    if threads < 1:
        raise ValueError(f"detect_threads must be 1 or more, got {detect_threads}")
    for frame, detections in _detected(recognizer.detector, reader, threads):
        result = recognizer.recognize_detected(frame.rgb, detections)
        result.path, result.frame, result.time_s = reader.info.source, frame.index, frame.time_s
        tracker.update(result.faces)
        yield frame, result


@dataclass(slots=True)
class VideoSummary:
    """What :func:`analyze_video` did: frames analysed, faces, tracks and the files it wrote."""

    info: VideoInfo
    frames: int
    frames_with_faces: int
    faces: int
    seconds: float
    tracks: list[TrackStats] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Analysed frames per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_text(self) -> str:
        """One line for the video, then one per track."""
        lines = [f"{Path(self.info.source).name}: {self.frames} frame(s) analysed, {self.frames_with_faces} with "
                 f"faces, {len(self.tracks)} track(s), {self.frames_per_second:.1f} frames/s"]
        lines += [f"  track {t.track}: {t.frames} frame(s), {t.start_s:.2f}-{t.end_s:.2f} s, mostly {t.label} "
                  f"({t.label_frames.get(t.label, 0)} of {t.frames} frames; mean probability "
                  f"{t.mean_scores[t.label]:.0%})" for t in self.tracks]
        return "\n".join(lines)


def analyze_video(
    recognizer: Recognizer,
    source: VideoSource | VideoReader,
    out_dir: str | os.PathLike,
    *,
    table_format: str = "csv",
    tracker: FaceTracker | None = None,
    annotate: bool = True,
    plot: bool = True,
    name: str | None = None,
    progress: bool = False,
    detect_threads: int | None = None,
) -> VideoSummary:
    """Classify and track the faces of every frame of a video (or camera) and write the results.

    Writes into ``out_dir``, under ``name`` (default: the file's stem, or ``camera<N>``):
    ``<name>_frames.<csv|json|jsonl|parquet>`` (one row per face per frame, see
    :func:`~ferkit.inference.results.frame_rows`), ``<name>_annotated.mp4`` (the analysed frames
    with boxes, track ids and labels, at the source's rate divided by the stride) and
    ``<name>_emotions.png`` (emotion over time per track). Pass an open :class:`VideoReader`
    to set the stride; ``detect_threads`` as for :func:`track_video`. Each file appears only once complete.
    """
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {table_format!r}; valid formats: {', '.join(TABLE_FORMATS)}")
    reader = source if isinstance(source, VideoReader) else VideoReader(source)
    info = reader.info
    if name is None:
        name = f"camera{info.source.split()[-1]}" if reader.is_camera else Path(info.source).stem
    out = Path(out_dir)
    paths = {"table": out / f"{name}_frames{TABLE_FORMATS[table_format]}"}
    if annotate:
        paths["video"] = out / f"{name}_annotated.mp4"
    if plot:
        paths["plot"] = out / f"{name}_emotions.png"
    timeline = EmotionTimeline(recognizer.labels)
    summary = VideoSummary(info=info, frames=0, frames_with_faces=0, faces=0, seconds=0.0)
    total = -(-info.frames // reader.stride) if info.frames else None
    start = time.perf_counter()
    with reader, contextlib.ExitStack() as stack:
        table = stack.enter_context(TableWriter(paths["table"], frame_columns(recognizer.labels), table_format))
        video = stack.enter_context(VideoWriter(paths["video"], fps=info.fps / reader.stride,
                                                size=(info.width, info.height))) if annotate else None
        bar = stack.enter_context(tqdm(total=total, desc=Path(info.source).name, unit="frame", leave=False,
                                       dynamic_ncols=True, disable=None if progress else True))
        for frame, result in track_video(recognizer, reader, tracker, detect_threads=detect_threads):
            table.write_rows(frame_rows(result, recognizer.labels))
            if video is not None:
                video.write(draw_faces(frame.rgb, result.faces))
            timeline.add(result)
            summary.frames += 1
            summary.faces += len(result.faces)
            summary.frames_with_faces += bool(result.faces)
            bar.update()
    if plot:
        timeline.save(paths["plot"], title=f"{Path(info.source).name}: emotion over time per tracked face")
    summary.seconds = time.perf_counter() - start
    summary.tracks = timeline.stats()
    summary.outputs = paths
    log.info("%s: %d frame(s) in %.1f s (%.1f frames/s), %d face(s), %d track(s)", info.source, summary.frames,
             summary.seconds, summary.frames_per_second, summary.faces, len(summary.tracks))
    return summary
