"""A live window on a camera: boxes, track ids and emotions drawn on each frame as it comes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2

from ..errors import FerkitError
from .draw import draw_faces
from .tracking import FaceTracker
from .video import VideoReader, VideoSource, track_video

if TYPE_CHECKING:
    from .pipeline import Sink
    from .recognizer import Recognizer

log = logging.getLogger(__name__)

#: Keys that close the window: q and Esc.
QUIT_KEYS = (ord("q"), 27)


def display_problem() -> str | None:
    """Why this process cannot open a window, or None if it can.

    Two causes, checked without touching a display (some GUI back-ends abort the process when
    there is none): an OpenCV built without a GUI (``opencv-python-headless``, ferkit's default),
    and on Linux no ``DISPLAY`` or ``WAYLAND_DISPLAY`` to draw on.
    """
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui is None or gui.group(1).upper() == "NONE":
        return ("this OpenCV build has no window support (opencv-python-headless); "
                "replace it with opencv-python for a live window")
    if sys.platform.startswith(("linux", "freebsd")) and not (os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display to open a window on (DISPLAY is not set)"
    return None


def run_webcam(recognizer: Recognizer, camera: VideoSource = 0, *, tracker: FaceTracker | None = None,
               window: str = "ferkit webcam", sinks: Sequence[Sink] = ()) -> int:
    """Show ``camera`` live with each face's box, track id and emotion until q or Esc; return the frames shown.

    ``camera`` is a camera index (or a video file, played as fast as it is analysed); every frame also
    goes to ``sinks`` (e.g. a :class:`~ferkit.inference.pipeline.TableSink`: the webcam log). Raises a
    :class:`FerkitError` when no window can be shown (see :func:`display_problem`) or the camera cannot be opened.
    """
    problem = display_problem()
    if problem:
        raise FerkitError(f"cannot show the webcam window: {problem}")
    shown = 0
    with VideoReader(camera) as reader, contextlib.ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        try:
            for frame, result in track_video(recognizer, reader, tracker):
                for sink in sinks:
                    sink.write(frame, result)
                cv2.imshow(window, cv2.cvtColor(draw_faces(frame.rgb, result.faces), cv2.COLOR_RGB2BGR))
                shown += 1
                key = cv2.waitKey(1) & 0xFF
                if key in QUIT_KEYS or cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1:
                    break
        finally:
            cv2.destroyWindow(window)
    log.info("%s: %d frame(s) shown", reader.info.source, shown)
    return shown
