"""Reading uploads safely: size limits while streaming, types sniffed from content, guarded decoding."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from ..inference.images import pil_to_rgb
from .errors import ApiError

#: Content types accepted for a raw body; the content itself still decides (see :func:`sniff`).
RAW_TYPES = ("image/", "video/", "application/octet-stream")
IMAGE_KINDS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF"}
VIDEO_KINDS = ("mp4", "webm", "avi")
#: The media types the API documents for uploads (the content decides, whatever the header says).
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff")
VIDEO_MEDIA_TYPES = ("video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo")
_CHUNK = 64 * 1024


def sniff(head: bytes) -> str | None:
    """The file kind from its first bytes (``jpeg``, ``png``, ..., ``mp4``, ``webm``, ``avi``), else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        if head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return "heif"  # HEIC/AVIF photos share the ISO container; not supported
        return "mp4"  # ISO base media: mp4, m4v, mov
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"  # Matroska / WebM
    return None


def describe(head: bytes) -> str:
    """A short guess at what unknown bytes are, for error messages."""
    if not head:
        return "nothing"
    sample = head[:64]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary data starting {sample[:8].hex(' ')}"
    return "text" if text.isprintable() or text.strip() else "binary data"


def size_text(limit: int) -> str:
    """A byte limit as people read it: ``20 MiB (20,971,520 bytes)``."""
    return f"{limit / 2**20:g} MiB ({limit:,} bytes)" if limit >= 2**20 else f"{limit:,} bytes"


def _too_large(what: str, limit: int, size: int | None = None) -> ApiError:
    sized = f" of {size:,} bytes" if size is not None else ""
    return ApiError(413, "upload_too_large", f"{what}{sized} is over the limit of {size_text(limit)}")


def _check_length_header(request: Request, limit: int, slack: int, what: str) -> None:
    """Refuse by the Content-Length header (over ``limit`` plus a form's ``slack``) before reading the body."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise ApiError(400, "bad_content_length", f"Content-Length {length!r} is not a number") from None
        if size > limit + slack:
            raise _too_large(what, limit, size)


async def _limited(chunks: AsyncIterator[bytes], limit: int, what: str) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise _too_large(what, limit)
        if chunk:
            yield chunk


def _limited_receive(receive: Receive, limit: int, slack: int, what: str) -> Receive:
    """``receive`` that refuses with 413 once the body passes ``limit + slack`` bytes (a form is parsed whole)."""
    total = 0

    async def wrapped() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit + slack:
                raise _too_large(what, limit)
        return message

    return wrapped


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


async def upload_chunks(request: Request, limit: int, what: str = "the upload") -> AsyncIterator[bytes]:
    """The uploaded file's bytes: a raw body, or the ``file`` field of a multipart form; at most ``limit``.

    Refuses a wrong Content-Type with 415 and too many bytes with 413 (by the Content-Length
    header before reading, and by counting while reading, for bodies sent without one).
    """
    ctype = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    slack = 64 * 1024 if ctype == "multipart/form-data" else 0  # a form adds some bytes around the file
    _check_length_header(request, limit, slack, what)
    try:
        if ctype == "multipart/form-data":
            guarded = Request(request.scope, _limited_receive(request.receive, limit, slack, what))
            form = await guarded.form(max_files=1, max_fields=8)
            upload = form.get("file")
            try:
                if not isinstance(upload, UploadFile):
                    raise ApiError(422, "missing_file", "the multipart form has no file field named 'file'")
                async for chunk in _limited(_file_chunks(upload), limit, what):
                    yield chunk
            finally:
                await form.close()
        elif ctype.startswith(RAW_TYPES):
            async for chunk in _limited(request.stream(), limit, what):
                yield chunk
        else:
            raise ApiError(415, "unsupported_media_type",
                           f"Content-Type {ctype!r} is not accepted; send the file as the raw body (image/*, "
                           "video/* or application/octet-stream) or as multipart/form-data with a field 'file'")
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away during the upload") from None


async def read_upload(request: Request, limit: int, what: str = "the upload") -> bytes:
    """All of :func:`upload_chunks` in memory; an empty upload is a 400."""
    data = b"".join([chunk async for chunk in upload_chunks(request, limit, what)])
    if not data:
        raise ApiError(400, "empty_body", f"{what} is empty: send the file's bytes")
    return data


def image_kind(data: bytes) -> str:
    """The image format of ``data``, or a 415 that says what it looks like instead."""
    kind = sniff(data[:32])
    if kind not in IMAGE_KINDS:
        found = f"a {kind} video" if kind in VIDEO_KINDS else "a HEIF/AVIF image" if kind == "heif" \
            else describe(data[:64])
        raise ApiError(415, "unsupported_media_type",
                       f"the content is not a supported image ({', '.join(IMAGE_KINDS)}); got {found}"
                       + (" (videos go to POST /v1/jobs)" if kind in VIDEO_KINDS else ""))
    return kind


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image to RGB uint8, refusing what is not an image, too large or truncated."""
    kind = image_kind(data)
    try:
        im = Image.open(io.BytesIO(data), formats=[IMAGE_KINDS[kind]])
        width, height = im.size
        if width * height > max_pixels:  # checked from the header, before the pixels are decoded
            raise ApiError(413, "image_too_large",
                           f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
                           f"{max_pixels:,}; shrink it first")
        im.load()
        im = ImageOps.exif_transpose(im) or im
        rgb = pil_to_rgb(im)
    except ApiError:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, for headers far over any sane size
        raise ApiError(413, "image_too_large", f"the image's header claims over {2 * Image.MAX_IMAGE_PIXELS:,} "
                                               f"pixels, over the limit of {max_pixels:,}; shrink it first") from None
    except UnidentifiedImageError as exc:
        raise ApiError(422, "undecodable_image", f"the {kind} image cannot be read: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ApiError(422, "undecodable_image",
                       f"the {kind} image cannot be decoded ({exc}); is it truncated or corrupt?") from None
    if rgb.size == 0:
        raise ApiError(422, "undecodable_image", "the image has no pixels")
    return rgb
