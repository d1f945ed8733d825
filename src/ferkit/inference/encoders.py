"""Video encoders behind :class:`~ferkit.inference.VideoWriter`.

H.264 in MP4 through PyAV (its wheels carry FFmpeg with libx264), which every browser plays; where
PyAV or its H.264 encoder is missing, OpenCV's MPEG-4 Part 2 (``mp4v``), which desktop players read
but browsers do not, with one warning saying so.
"""

from __future__ import annotations

import functools
import logging
from fractions import Fraction
from typing import Protocol

import cv2
import numpy as np

from ..errors import FerkitError

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """Writes RGB frames of a fixed size to one file; ``close`` finishes the file."""

    codec: str

    def write(self, rgb: np.ndarray) -> None: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=1)
def h264_available() -> bool:
    """Whether PyAV is installed with an H.264 encoder (libx264)."""
    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:  # ImportError, or a PyAV built without libx264
        return False
    return True


# ultrafast: 1.5-1.7x superfast's speed for files 1.25-1.55x the size; the encoder was a fixed cost that kept
# short videos from 5x fer (`python benchmarks/video_pipeline.py --presets`, docs/results.md)
H264_PRESET = "ultrafast"


class H264Encoder:
    """H.264 (yuv420p, ``+faststart`` so playback starts before the whole file arrives) through PyAV."""

    codec = "h264"

    def __init__(self, path: str, fps: float, size: tuple[int, int], preset: str = H264_PRESET) -> None:
        import av

        self._av = av
        self._container = av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        # yuv420p needs even sides: odd ones get a one-pixel edge copied in
        self._stream.width, self._stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self._stream.pix_fmt = "yuv420p"
        # zerolatency: no frames held back, so closing a short video costs nothing
        self._stream.options = {"preset": preset, "tune": "zerolatency", "crf": "23"}

    def write(self, rgb: np.ndarray) -> None:
        pad = ((0, self._stream.height - rgb.shape[0]), (0, self._stream.width - rgb.shape[1]), (0, 0))
        if any(p[1] for p in pad):
            rgb = np.pad(rgb, pad, mode="edge")
        # to YUV 4:2:0 here (OpenCV, no GIL held; BT.601 video range as FFmpeg's own conversion) rather than in
        # PyAV, whose conversion holds the GIL and stalls the analysis thread
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        frame = self._av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):  # flush the frames the encoder still holds
                self._container.mux(packet)
        finally:
            self._container.close()


class Mp4vEncoder:
    """MPEG-4 Part 2 through OpenCV: the fallback where PyAV's H.264 is missing."""

    codec = "mp4v"

    def __init__(self, path: str, fps: float, size: tuple[int, int]) -> None:
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise FerkitError(f"{path}: OpenCV cannot write this video (mp4v, {size[0]}x{size[1]})")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()


@functools.lru_cache(maxsize=1)
def _warn_no_h264() -> None:
    log.warning("PyAV with H.264 is not installed: writing MPEG-4 Part 2 videos, which browsers do not play "
                "(pip install av)")


def open_encoder(path: str, fps: float, size: tuple[int, int], codec: str = "auto") -> Encoder:
    """An encoder for ``path``: ``h264`` (PyAV), ``mp4v`` (OpenCV), or ``auto`` (H.264 where available)."""
    if codec not in ("auto", "h264", "mp4v"):
        raise ValueError(f"unknown video codec {codec!r}; use auto, h264 or mp4v")
    if codec == "h264" and not h264_available():
        raise FerkitError("H.264 video needs PyAV with libx264: pip install av")
    if codec == "mp4v" or not h264_available():
        if codec == "auto":
            _warn_no_h264()
        return Mp4vEncoder(path, fps, size)
    try:
        return H264Encoder(path, fps, size)
    except Exception as exc:  # the encoder refused these settings: fall back rather than lose the video
        if codec == "h264":
            raise FerkitError(f"{path}: cannot write H.264 ({exc})") from None
        log.warning("H.264 encoder failed (%s); writing MPEG-4 Part 2", exc)
        return Mp4vEncoder(path, fps, size)
