"""Video jobs in-process: upload, progress, results, refusals, and what a restart leaves behind."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from ferkit.serving import ServeSettings, create_app  # noqa: E402
from serving_support import LOCAL, gated_recognizer, shared_recognizer  # noqa: E402

LIMITS = dict(max_video_bytes=2_000_000, max_video_seconds=10.0, workers=1)


def _video(path: Path, frames: int, fps: float, size: tuple[int, int] = (96, 72)) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 37) % 256, np.uint8))
    writer.release()
    return path.read_bytes()


def _wait(client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.json()
    return response.json()["error"]["message"]


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def client(jobs_dir):
    app = create_app(ServeSettings(jobs_dir=jobs_dir, **LIMITS), recognizer=shared_recognizer())
    with TestClient(app, base_url=LOCAL) as c:
        yield c


@pytest.mark.slow
def test_a_real_video_job_from_upload_to_results(client, shared_data, tmp_path):
    response = client.post("/v1/jobs", content=(shared_data / "videos" / "single_face.mp4").read_bytes(),
                           headers={"content-type": "video/mp4"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["frames_total"] == 72 and job["stride"] == 1
    job = _wait(client, job["id"])
    assert job["state"] == "done" and job["progress"] == 1.0 and job["frames_done"] == 72, job
    assert set(job["results"]) == {"frames.csv", "frames.json", "annotated.mp4"}

    doc = client.get(job["results"]["frames.json"]).json()
    assert doc["video"]["frames"] == 72 and [f["frame"] for f in doc["frames"]] == list(range(72))
    assert sum(len(f["faces"]) == 1 for f in doc["frames"]) >= 70  # one face in (nearly) every frame
    assert {f["faces"][0]["track"] for f in doc["frames"] if f["faces"]} == {0}  # one track throughout

    table = client.get(job["results"]["frames.csv"])
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == sum(max(1, len(f["faces"])) for f in doc["frames"])
    assert set(doc["labels"]) <= set(rows[0]) and rows[0]["label"] in doc["labels"]

    video = client.get(job["results"]["annotated.mp4"])
    assert video.headers["content-type"] == "video/mp4"
    (tmp_path / "a.mp4").write_bytes(video.content)
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 640 and cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == 360
    assert _decodable_frames(tmp_path / "a.mp4") == 72
    av = pytest.importorskip("av", reason="PyAV writes the browser-playable H.264")
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"  # what browsers play


def _decodable_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    return count


def test_a_video_without_faces_as_a_form_upload(client, shared_data, tmp_path):
    # The first 30 frames of the real no-face clip at half size (the whole clip takes long on a busy CPU).
    cap = cv2.VideoCapture(str(shared_data / "videos" / "no_face.mp4"))
    writer = cv2.VideoWriter(str(tmp_path / "c.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (480, 270))
    for _ in range(30):
        writer.write(cv2.resize(cap.read()[1], (480, 270), interpolation=cv2.INTER_AREA))
    writer.release()
    data = (tmp_path / "c.mp4").read_bytes()
    response = client.post("/v1/jobs", files={"file": ("clip.bin", data, "application/octet-stream")})
    assert response.status_code == 202, response.text
    job = _wait(client, response.json()["id"])
    assert job["state"] == "done" and job["frames_done"] == job["frames_total"] == 30 and job["stride"] == 1
    doc = client.get(job["results"]["frames.json"]).json()
    assert len(doc["frames"]) == 30 and all(f["faces"] == [] for f in doc["frames"])


def test_the_frame_count_is_what_decodes_not_what_the_container_declares(shared_data, tmp_path):
    from ferkit.serving.jobs import probe_video

    path = shared_data / "videos" / "no_face.mp4"
    info = probe_video(path, ServeSettings(jobs_dir=tmp_path))
    assert info.frames == 98 and (info.width, info.height) == (960, 540)  # declared; OpenCV decodes 95
    assert _decodable_frames(path) < info.frames  # so a job reports the frames it read (see _run)


@pytest.mark.parametrize(("make", "status", "code"), [
    (lambda tmp: b"", 400, "empty_body"),
    (lambda tmp: b"just some text, not a video\n" * 4, 415, "unsupported_media_type"),
    (lambda tmp: b"\xff\xd8\xff\xe0" + b"\x00" * 60, 415, "unsupported_media_type"),
    (lambda tmp: _video(tmp / "v.mp4", 20, 10)[:600], 422, "undecodable_video"),
    (lambda tmp: _video(tmp / "v.mp4", 12, 1), 413, "video_too_long"),  # 12 s, the limit is 10 s
    (lambda tmp: b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2_100_000, 413, "upload_too_large"),
])
def test_bad_videos_are_refused_and_leave_nothing_behind(client, jobs_dir, tmp_path, make, status, code):
    before = sorted(p.name for p in jobs_dir.iterdir())
    _error(client.post("/v1/jobs", content=make(tmp_path), headers={"content-type": "video/mp4"}), status, code)
    assert sorted(p.name for p in jobs_dir.iterdir()) == before


def test_unknown_and_malformed_job_ids(client):
    _error(client.get(f"/v1/jobs/{'0' * 32}"), 404, "job_not_found")
    _error(client.get("/v1/jobs/../../etc"), 404, "not_found")
    _error(client.get("/v1/jobs/NOT-AN-ID"), 422, "invalid_request")
    _error(client.get(f"/v1/jobs/{'0' * 32}/results/secrets.txt"), 422, "invalid_request")


@pytest.fixture()
def gated(tmp_path):
    rec, gate = gated_recognizer()
    app = create_app(ServeSettings(jobs_dir=tmp_path / "jobs", **LIMITS), recognizer=rec)
    return app, gate, tmp_path / "jobs"


def test_results_wait_for_the_job_and_only_finished_jobs_can_be_deleted(gated, tmp_path):
    app, gate, _ = gated
    with TestClient(app, base_url=LOCAL) as client:
        job = client.post("/v1/jobs", content=_video(tmp_path / "v.mp4", 10, 10)).json()
        assert gate.entered.wait(60)
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"
        _error(client.get(f"/v1/jobs/{job['id']}/results/frames.csv"), 409, "job_not_done")
        _error(client.delete(f"/v1/jobs/{job['id']}"), 409, "job_running")
        gate.release.set()
        assert _wait(client, job["id"])["state"] == "done"
        assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [job["id"]]
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        _error(client.get(f"/v1/jobs/{job['id']}"), 404, "job_not_found")


def test_stopping_the_server_mid_job_marks_it_interrupted_and_removes_partial_files(gated, tmp_path):
    app, gate, jobs = gated
    with TestClient(app, base_url=LOCAL) as client:
        job = client.post("/v1/jobs", content=_video(tmp_path / "v.mp4", 10, 10)).json()
        assert gate.entered.wait(60)
        threading.Timer(0.5, gate.release.set).start()  # the frame in progress ends during shutdown
    state = json.loads((jobs / job["id"] / "state.json").read_text())
    assert state["state"] == "interrupted" and "stopped" in state["error"]
    assert sorted(p.name for p in (jobs / job["id"]).iterdir()) == ["input.mp4", "state.json"]


def test_only_the_newest_jobs_are_kept(tmp_path):
    settings = ServeSettings(jobs_dir=tmp_path / "jobs", max_jobs_kept=2, **LIMITS)
    with TestClient(create_app(settings, recognizer=shared_recognizer()), base_url=LOCAL) as client:
        ids = []
        for i in range(3):
            ids.append(client.post("/v1/jobs", content=_video(tmp_path / f"v{i}.mp4", 4, 10)).json()["id"])
            assert _wait(client, ids[-1])["state"] == "done"
        assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == ids[:0:-1]  # newest first
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == sorted(ids[1:])
        _error(client.get(f"/v1/jobs/{ids[0]}"), 404, "job_not_found")


def test_a_restart_after_a_crash_marks_unfinished_jobs_and_keeps_finished_ones(tmp_path):
    jobs = tmp_path / "jobs"
    app = create_app(ServeSettings(jobs_dir=jobs, **LIMITS), recognizer=shared_recognizer())
    with TestClient(app, base_url=LOCAL) as client:
        done = _wait(client, client.post("/v1/jobs", content=_video(tmp_path / "v.mp4", 10, 10)).json()["id"])
    assert done["state"] == "done"
    # What a killed server leaves: a job marked running with half-written files, and an upload in flight.
    crashed = jobs / ("c" * 32)
    crashed.mkdir()
    (crashed / "input.mp4").write_bytes((tmp_path / "v.mp4").read_bytes())
    state = json.loads((jobs / done["id"] / "state.json").read_text())
    (crashed / "state.json").write_text(json.dumps({**state, "id": crashed.name, "state": "running"}))
    (crashed / ".annotated.tmp.mp4").write_bytes(b"\x00" * 100)
    (crashed / ".frames.json.x1.tmp").write_text("{")
    (jobs / ("d" * 32)).mkdir()
    (jobs / ("d" * 32) / ".upload").write_bytes(b"\x00" * 10)
    (jobs / "notes").mkdir()  # not a job folder: left alone
    (jobs / "notes" / "todo.txt").write_text("keep me")

    app = create_app(ServeSettings(jobs_dir=jobs, **LIMITS), recognizer=shared_recognizer())
    with TestClient(app, base_url=LOCAL) as client:
        job = client.get(f"/v1/jobs/{crashed.name}").json()
        assert job["state"] == "interrupted" and job["results"] == {} and "upload the video again" in job["error"]
        assert sorted(p.name for p in crashed.iterdir()) == ["input.mp4", "state.json"]
        assert not (jobs / ("d" * 32)).exists()
        assert (jobs / "notes" / "todo.txt").read_text() == "keep me"
        again = client.get(f"/v1/jobs/{done['id']}").json()
        assert again["state"] == "done"
        assert client.get(again["results"]["frames.json"]).json()["video"]["frames"] == 10


def test_upload_slots_are_reserved_before_the_upload_so_parallel_uploads_cannot_pass_the_limit(tmp_path):
    from ferkit.serving.jobs import JobStore

    store = JobStore(ServeSettings(jobs_dir=tmp_path / "jobs", max_queued_jobs=3), shared_recognizer())
    store.recover()
    folders = [store.new_folder()[1] for _ in range(3)]  # three uploads in progress, none a job yet
    _error_of(lambda: store.new_folder(), 429, "too_many_jobs")
    assert store.queued == 3
    store.abandon(folders[0])  # a failed upload gives its slot back and leaves no folder
    assert not folders[0].exists() and store.queued == 2
    store.new_folder()
    _error_of(lambda: store.new_folder(), 429, "too_many_jobs")


def _error_of(call, status: int, code: str) -> None:
    from ferkit.serving.errors import ApiError

    with pytest.raises(ApiError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code)


def test_the_jobs_folder_is_held_under_its_size_cap(tmp_path):
    from ferkit.serving.jobs import folder_bytes

    video, jobs = _video(tmp_path / "v.mp4", 10, 10), tmp_path / "jobs"
    with TestClient(create_app(ServeSettings(jobs_dir=jobs, **LIMITS), recognizer=shared_recognizer()),
                    base_url=LOCAL) as client:
        first = _wait(client, client.post("/v1/jobs", content=video).json()["id"])["id"]
    one_job = folder_bytes(jobs / first)
    settings = ServeSettings(jobs_dir=jobs, max_jobs_bytes=int(2.5 * one_job), **LIMITS)
    with TestClient(create_app(settings, recognizer=shared_recognizer()), base_url=LOCAL) as client:
        ids = [_wait(client, client.post("/v1/jobs", content=video).json()["id"])["id"] for _ in range(3)]
        kept = [j["id"] for j in client.get("/v1/jobs").json()["jobs"]]
    assert kept == ids[::-1][:2]  # room for two: the newest two survive
    assert folder_bytes(jobs) <= settings.max_jobs_bytes


def test_a_job_deleted_the_moment_it_finishes_does_not_stop_the_worker(tmp_path, monkeypatch):
    from ferkit.serving.jobs import JobStore

    app = create_app(ServeSettings(jobs_dir=tmp_path / "jobs", **LIMITS), recognizer=shared_recognizer())
    real_save, deleting = JobStore._save, []

    def save_racing_a_delete(store, state):  # a client deletes the job while its final state is being written
        if state["state"] == "done" and not deleting:
            deleting.append(threading.Thread(target=lambda: _try_delete(store, state["id"])))
            deleting[0].start()
            deleting[0].join(0.3)
        real_save(store, state)

    monkeypatch.setattr(JobStore, "_save", save_racing_a_delete)
    with TestClient(app, base_url=LOCAL) as client:
        first = client.post("/v1/jobs", content=_video(tmp_path / "a.mp4", 4, 10)).json()["id"]
        second = client.post("/v1/jobs", content=_video(tmp_path / "b.mp4", 4, 10)).json()["id"]
        assert _wait(client, second, timeout=120)["state"] == "done"  # the worker lived on
        deleting[0].join(10)
        _error(client.get(f"/v1/jobs/{first}"), 404, "job_not_found")
        assert not (tmp_path / "jobs" / first).exists()


def _try_delete(store, job_id: str) -> None:
    from ferkit.serving.errors import ApiError

    with contextlib.suppress(ApiError):
        store.delete(job_id)
