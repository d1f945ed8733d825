"""The live endpoint: webcam frames in over a WebSocket, faces and emotions out, one reply per frame."""

from __future__ import annotations

import logging
import time

from fastapi import WebSocket, WebSocketDisconnect

from ..inference import Recognizer
from .errors import ApiError
from .uploads import decode_image

log = logging.getLogger(__name__)


def _face(face) -> dict:
    return {"box": list(face.box), "label": face.label, "confidence": round(face.confidence, 4),
            "scores": {k: round(v, 4) for k, v in face.scores.items()}}


async def live(websocket: WebSocket) -> None:
    """``/v1/live``: each binary message is one JPEG/PNG/WebP frame; each reply is JSON.

    A reply is ``{"frame": n, "width", "height", "faces": [{box, label, confidence, scores}],
    "elapsed_ms"}``, or ``{"frame": n, "error": {status, code, message}}`` for a frame that was
    refused (too large, not an image, server busy); the connection stays open either way. Send
    the next frame when a reply arrives (or keep two in flight) to get a steady rate.
    """
    settings, engine = websocket.app.state.settings, websocket.app.state.engine
    await websocket.accept()
    count = 0
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            count += 1
            data = message.get("bytes")
            try:
                if data is None:
                    raise ApiError(400, "expected_binary", "send each frame as a binary message (JPEG, PNG or WebP)")
                if not data:
                    raise ApiError(400, "empty_body", "the frame is empty")
                if len(data) > settings.max_live_frame_bytes:
                    raise ApiError(413, "frame_too_large", f"the frame has {len(data):,} bytes, over the limit of "
                                                           f"{settings.max_live_frame_bytes:,}")
                reply = await engine.run(_analyse, data, settings.max_live_pixels, timeout=settings.request_timeout_s)
                reply["frame"] = count
            except ApiError as exc:
                reply = {"frame": count, **exc.payload()}
            await websocket.send_json(reply)
    except WebSocketDisconnect:
        pass
    log.debug("live connection closed after %d frames", count)


def _analyse(rec: Recognizer, data: bytes, max_pixels: int) -> dict:
    start = time.perf_counter()
    rgb = decode_image(data, max_pixels)
    result = rec(rgb)
    return {"width": result.width, "height": result.height, "faces": [_face(f) for f in result.faces],
            "elapsed_ms": round((time.perf_counter() - start) * 1000, 2)}
