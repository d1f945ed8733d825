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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import FerkitError
from ..io import existing_file
from .encoders import Encoder, open_encoder
from .keyframes import DEFAULT_DETECT_EVERY, detect_segments
from .results import ImageResult
from .threads import read_ahead
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

    @property
    def duration_s(self) -> float | None:
        """The length in seconds from the declared frame count and rate; None when either is unknown."""
        return self.frames / self.fps if self.frames and self.fps > 0 else None


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
    """Detection threads :func:`track_video` uses by default: up to 2 for a file (one per core this process computes
    with: 1 on a one-CPU Ray worker), 1 for a camera (detecting ahead would add latency to a live view)."""
    import torch

    return 1 if reader.is_camera else max(1, min(2, os.cpu_count() or 1, torch.get_num_threads()))


def default_detect_every(reader: VideoReader) -> int:
    """Key-frame interval :func:`track_video` uses by default: :data:`~ferkit.inference.keyframes.DEFAULT_DETECT_EVERY`
    for a file, 1 for a camera (boxes between key frames need the next key frame, a delay a live view cannot take)."""
    return 1 if reader.is_camera else DEFAULT_DETECT_EVERY


def track_video(recognizer: Recognizer, reader: VideoReader, tracker: FaceTracker | None = None, *,
                detect_threads: int | None = None, detect_every: int | None = None,
                ) -> Iterator[tuple[Frame, ImageResult]]:
    """Each frame of an open ``reader`` with its faces classified and tracked (a generator).

    Each :class:`ImageResult` has the video as ``path``, ``frame`` and ``time_s`` set and a
    ``track`` id on each face; ``tracker`` (default: one with the recognizer's ``options.smoothing``) sets
    the matching and smoothing options. Frames are decoded ahead on a thread of their own; faces are
    detected on key frames every ``detect_every`` frames (default: the recognizer's
    ``options.detect_every``, else :func:`default_detect_every`; 1 = every frame), ``detect_threads`` key
    frames ahead on worker threads (default :func:`default_detect_threads`), with boxes carried between
    them as :mod:`~ferkit.inference.keyframes` explains; the faces of a key frame and the frames after it
    are classified in one batch.
    """
    options = recognizer.options
    tracker = tracker or options.tracker()
    threads = default_detect_threads(reader) if detect_threads is None else int(detect_threads)
    every = detect_every if detect_every is not None else options.detect_every or default_detect_every(reader)
    if threads < 1:
        raise ValueError(f"detect_threads must be 1 or more, got {detect_threads}")
    frames = iter(reader) if reader.is_camera else read_ahead(reader, size=4)
    segments = detect_segments(recognizer.detector, frames, every=every, threads=threads)
    try:
        for segment in segments:
            results = recognizer.recognize_frames([frame.rgb for frame, _ in segment], [d for _, d in segment])
            for (frame, _), result in zip(segment, results):
                result.path, result.frame, result.time_s = reader.info.source, frame.index, frame.time_s
                tracker.update(result.faces)
                yield frame, result
    finally:  # stop the reading and detecting threads now, not when an error's traceback is collected
        segments.close()
        if hasattr(frames, "close"):
            frames.close()
