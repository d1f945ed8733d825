"""The bad-input matrix: every case the CLI or the API may meet gets a clear refusal, never a traceback or
a partial file. The CLI exits 2 naming the input and the problem; the API answers a 4xx with its JSON
error shape. Valid but unusual images (16-bit, CMYK) are read, not refused.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from synthetic import small_checkpoint

MB = 2**20


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + \
        chunk(b"IEND", b"")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _noise(width: int = 96, height: int = 72) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


# name -> (file name, bytes) of inputs that must be refused
def _bad_files() -> dict[str, tuple[str, bytes]]:
    photo = _jpeg(_noise())
    return {
        "empty": ("empty.jpg", b""),
        "text named .jpg": ("notes.jpg", b"this is a shopping list, not a photo\n"),
        "truncated": ("cut.jpg", photo[: len(photo) // 3]),
        "bomb header": ("bomb.png", _png_header_only(30000, 30000)),
        "wrong type": ("report.pdf", b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"),
        "corrupt video": ("clip.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(5000)),
    }


BAD = _bad_files()
REASONS = {"empty": "empty", "text named .jpg": "not an image", "truncated": "truncated",
           "bomb header": "too large", "wrong type": "neither a photo nor a video",
           "corrupt video": "not a video"}


# ---- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("case", [*BAD, "missing"])
def test_cli_refuses_each_bad_input_clearly_and_writes_nothing(case, tmp_path, capsys):
    path = tmp_path / "missing.jpg"
    if case != "missing":
        name, data = BAD[case]
        path = tmp_path / name
        path.write_bytes(data)
    out = tmp_path / "out"
    assert main(["predict", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and (REASONS.get(case, "not found") in err), err
    assert "Traceback" not in err and "moov atom" not in err
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


@pytest.mark.parametrize("bad_out", ["a file", "under a file"])
def test_cli_refuses_a_bad_output_path_before_any_work(bad_out, tmp_path, capsys):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(_jpeg(_noise()))
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker if bad_out == "a file" else blocker / "results"
    assert main(["predict", str(photo), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "Traceback" not in err, err
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("command", ["export fp16", "export onnx", "ensemble", "batch"])
@pytest.mark.parametrize("bad_out", ["a folder", "under a file"])
def test_every_writing_command_refuses_an_output_it_cannot_write(command, bad_out, tmp_path, capsys):
    checkpoint = small_checkpoint(tmp_path / "model.pt")
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = str(tmp_path if bad_out == "a folder" else blocker / "out.pt")
    if command == "batch":
        pytest.importorskip("pyarrow")
        photo = tmp_path / "p.jpg"
        photo.write_bytes(_jpeg(_noise()))
        out = str(blocker if bad_out == "a folder" else blocker / "results")
    argv = {"export fp16": ["export", str(checkpoint), "--format", "fp16", "--out", out],
            "export onnx": ["export", str(checkpoint), "--format", "onnx", "--out", out],
            "ensemble": ["ensemble", str(checkpoint), str(checkpoint), "--out", out],
            "batch": ["batch", str(tmp_path / "p.jpg"), "--model", str(checkpoint), "--out", out]}[command]
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    named = out if bad_out == "a folder" else str(blocker)  # the output, or the file standing in its way
    assert named in err and "Traceback" not in err, err
    assert blocker.read_text() == "keep me"
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("mode", ["I;16", "CMYK"])
def test_cli_reads_16_bit_and_cmyk_photos_like_ordinary_ones(mode, shared_data, tmp_path, capsys):
    face = Image.open(shared_data / "photos" / "single_face_pyfeat.jpg")
    path = tmp_path / ("face.png" if mode == "I;16" else "face.jpg")
    if mode == "I;16":
        Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257).save(path)
    else:
        face.convert("CMYK").save(path)
    assert Image.open(path).mode == mode
    assert main(["predict", str(path), "--out", str(tmp_path / "out"), "--no-draw"]) == 0
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # the header and the one face


# ---- the web API -----------------------------------------------------------------------------
fastapi = pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from ferkit.serving import ServeSettings, create_app  # noqa: E402
from serving_support import LOCAL, gated_recognizer, live_server, shared_recognizer  # noqa: E402

API_STATUS = {"empty": (400, "empty_body"), "text named .jpg": (415, "unsupported_media_type"),
              "truncated": (422, "undecodable_image"), "bomb header": (413, "image_too_large"),
              "wrong type": (415, "unsupported_media_type")}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    jobs = tmp_path_factory.mktemp("jobs")
    app = create_app(ServeSettings(jobs_dir=jobs, workers=1, max_video_bytes=2 * MB), recognizer=shared_recognizer())
    with TestClient(app, base_url=LOCAL) as client:
        yield client, jobs


def _refused(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (status, code) and "Traceback" not in body["message"]
    return body["message"]


@pytest.mark.parametrize("case", list(API_STATUS))
def test_api_refuses_each_bad_photo_with_its_4xx(case, api):
    client, _ = api
    _refused(client.post("/v1/analyze", content=BAD[case][1], headers={"content-type": "image/jpeg"}),
             *API_STATUS[case])


def test_api_refuses_a_60_mb_photo_quoting_the_documented_limit(api):
    client, _ = api
    message = _refused(client.post("/v1/analyze", content=bytes(60 * MB), headers={"content-type": "image/png"}),
                       413, "upload_too_large")
    assert "20 MiB" in message


def test_api_refuses_a_wrong_content_type_and_a_missing_form_field(api):
    client, _ = api
    _refused(client.post("/v1/analyze", content=b"{}", headers={"content-type": "application/json"}),
             415, "unsupported_media_type")
    _refused(client.post("/v1/analyze", files={"photo": ("a.jpg", _jpeg(_noise()), "image/jpeg")}),
             422, "missing_file")


@pytest.mark.parametrize("mode", ["I;16", "CMYK"])
def test_api_reads_16_bit_and_cmyk_photos(mode, api):
    client, _ = api
    image = _noise()
    buffer = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257).save(buffer, format="PNG")
    else:
        image.convert("CMYK").save(buffer, format="JPEG")
    response = client.post("/v1/analyze", content=buffer.getvalue(), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert (response.json()["width"], response.json()["height"]) == image.size


@pytest.mark.parametrize("case", ["corrupt video", "text named .jpg", "empty"])
def test_api_refuses_bad_videos_and_leaves_no_job_files(case, api):
    client, jobs = api
    before = sorted(p.name for p in jobs.iterdir())
    expected = {"corrupt video": (422, "undecodable_video"), "text named .jpg": (415, "unsupported_media_type"),
                "empty": (400, "empty_body")}[case]
    _refused(client.post("/v1/jobs", content=BAD[case][1], headers={"content-type": "video/mp4"}), *expected)
    assert sorted(p.name for p in jobs.iterdir()) == before


def test_api_refuses_other_origins_and_foreign_hosts_but_serves_its_own_page(api):
    client, _ = api
    photo = {"content": _jpeg(_noise()), "headers": {"content-type": "image/jpeg"}}
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
        _refused(client.post("/v1/analyze", content=photo["content"],
                             headers={**photo["headers"], "origin": origin}), 403, "forbidden_origin")
    _refused(client.delete(f"/v1/jobs/{'a' * 32}", headers={"origin": "http://evil.example"}), 403, "forbidden_origin")
    _refused(client.get("/v1/health", headers={"host": "evil.example:8000"}), 403, "forbidden_origin")  # rebinding
    assert client.post("/v1/analyze", **photo).status_code == 200  # no Origin: curl, scripts
    same = client.post("/v1/analyze", content=photo["content"],
                       headers={**photo["headers"], "origin": LOCAL})
    assert same.status_code == 200  # the service's own page


def test_allowed_origins_are_served_with_cors_headers(tmp_path):
    settings = ServeSettings(jobs_dir=tmp_path, workers=1, allowed_origins=("http://localhost:3000",))
    with TestClient(create_app(settings, recognizer=shared_recognizer()), base_url=LOCAL) as client:
        ok = client.get("/v1/health", headers={"origin": "http://localhost:3000"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        _refused(client.get("/v1/health", headers={"origin": "http://localhost:3001"}), 403, "forbidden_origin")


def test_a_cross_origin_websocket_is_refused_at_the_handshake(api):
    from starlette.websockets import WebSocketDisconnect

    client, _ = api
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("ws://127.0.0.1/v1/live", headers={"origin": "http://evil.example"}):
        pass
    assert refused.value.code == 1008
    with client.websocket_connect("ws://127.0.0.1/v1/live", headers={"origin": LOCAL}) as ws:
        ws.send_bytes(_jpeg(_noise()))
        assert ws.receive_json()["frame"] == 1


def test_a_parallel_flood_of_video_uploads_cannot_pass_the_job_limit(tmp_path):
    import http.client

    import cv2

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 72))
    for i in range(5):
        writer.write(np.full((72, 96, 3), 40 * i, np.uint8))
    writer.release()
    rec, gate = gated_recognizer()  # jobs stay queued behind the gate
    app = create_app(ServeSettings(jobs_dir=tmp_path / "jobs", workers=1, max_queued_jobs=4), recognizer=rec)
    statuses: list[int] = []

    def upload(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("POST", "/v1/jobs", body=clip.read_bytes(), headers={"Content-Type": "video/mp4"})
        statuses.append(connection.getresponse().status)

    try:
        with live_server(app) as url:
            port = int(url.rsplit(":", 1)[1])
            threads = [threading.Thread(target=upload, args=(port,)) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            gate.release.set()
    finally:
        gate.release.set()
    assert len(statuses) == 20 and set(statuses) <= {202, 429}, statuses
    assert statuses.count(202) <= 4 and statuses.count(429) >= 16
    folders = [p for p in (tmp_path / "jobs").iterdir() if p.is_dir()]
    assert len(folders) == statuses.count(202)  # refused uploads left nothing behind


def test_serve_refuses_a_jobs_folder_that_is_a_file_before_starting(tmp_path, capsys):
    taken = tmp_path / "jobs"
    taken.write_text("not a folder")
    assert main(["serve", "--jobs-dir", str(taken), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert str(taken) in err and "Traceback" not in err


def test_jobs_live_in_the_per_user_cache_unless_told_otherwise(tmp_path, monkeypatch):
    for name in ("FERKIT_JOBS_DIR", "FERKIT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ServeSettings().jobs_dir == tmp_path / "cache" / "ferkit" / "jobs"
    monkeypatch.setenv("FERKIT_JOBS_DIR", str(tmp_path / "mine"))
    assert ServeSettings().jobs_dir == tmp_path / "mine"
