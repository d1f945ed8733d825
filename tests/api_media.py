"""Schemathesis strategies for the media types the API documents: real images and videos, not random bytes.

The OpenAPI document can only say "binary" for an upload; these strategies make the fuzzer send
bytes that decode as the declared type, so a schema-valid request is one the service must accept
(schemathesis' positive_data_acceptance check). Used by tests/test_serving_fuzz.py and, as a hooks
module, by benchmarks/fuzz_api.py (``SCHEMATHESIS_HOOKS=api_media``).
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF",
                 "image/bmp": "BMP", "image/tiff": "TIFF"}


def encode_image(fmt: str, width: int, height: int, seed: int) -> bytes:
    """Random pixels of the given size encoded as ``fmt`` (a Pillow format name)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def image_strategy(fmt: str) -> st.SearchStrategy[bytes]:
    sizes = st.integers(1, 96)
    return st.builds(functools.partial(encode_image, fmt), sizes, sizes, st.integers(0, 2**16))


@functools.cache
def video_bytes(fourcc: str, suffix: str) -> bytes:
    """A tiny clip (48x32, 6 frames at 10 fps) written by OpenCV with ``fourcc``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (48, 32))
        for i in range(6):
            writer.write(np.full((32, 48, 3), 40 * i, np.uint8))
        writer.release()
        return path.read_bytes()


VIDEO_CLIPS = {"video/mp4": ("mp4v", ".mp4"), "video/quicktime": ("mp4v", ".mp4"), "video/webm": ("VP80", ".webm"),
               "video/x-matroska": ("VP80", ".webm"), "video/x-msvideo": ("MJPG", ".avi")}


def register() -> None:
    """Register a strategy for every image and video media type of the API."""
    for media_type, fmt in IMAGE_FORMATS.items():
        schemathesis.openapi.media_type(media_type, image_strategy(fmt))
    for media_type, (fourcc, suffix) in VIDEO_CLIPS.items():
        schemathesis.openapi.media_type(media_type, st.just(video_bytes(fourcc, suffix)))


register()  # as a SCHEMATHESIS_HOOKS module, importing it is what registers the strategies
