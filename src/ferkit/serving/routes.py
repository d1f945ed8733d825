"""The HTTP endpoints under ``/v1``: photos, video jobs, health and models."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from .. import __version__
from ..inference import Recognizer, draw_faces
from .errors import ApiError
from .jobs import RESULTS, probe_video
from .schemas import (
    AnalyzeResponse,
    ErrorResponse,
    FaceOut,
    HealthResponse,
    JobList,
    JobOut,
    LiveInfo,
    ModelCard,
    ModelOut,
    ModelsResponse,
)
from .uploads import (
    IMAGE_KINDS,
    IMAGE_MEDIA_TYPES,
    VIDEO_KINDS,
    VIDEO_MEDIA_TYPES,
    decode_image,
    describe,
    image_kind,
    read_upload,
    sniff,
    upload_chunks,
)

router = APIRouter(prefix="/v1")

_BINARY = {"schema": {"type": "string", "format": "binary", "minLength": 1}}


def _body(types: tuple[str, ...]) -> dict[str, Any]:
    """The request body: the file as the raw body in one of ``types``, or as the form field ``file``.

    (``application/octet-stream`` is taken too, undocumented: the content decides the type.)
    """
    form = {"schema": {"type": "object", "properties": {"file": _BINARY["schema"]}, "required": ["file"],
                       "additionalProperties": False},
            "encoding": {"file": {"contentType": ", ".join(types)}}}
    content = {t: _BINARY for t in types}
    return {"requestBody": {"required": True, "content": {**content, "multipart/form-data": form}}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


JOB_ID = PathParam(pattern="^[0-9a-f]{32}$", description="the id returned by POST /v1/jobs")


class ResultName(str, Enum):
    frames_csv = "frames.csv"
    frames_json = "frames.json"
    annotated_mp4 = "annotated.mp4"


def _faces(result) -> list[FaceOut]:
    return [FaceOut(**f.to_dict()) for f in result.faces]


def _data_url(rgb, faces) -> str:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(draw_faces(rgb, faces), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ApiError(500, "encode_failed", "could not encode the annotated image")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


async def _within(coro, seconds: float, what: str):
    try:
        return await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        raise ApiError(408, "timeout", f"{what} did not arrive within {seconds:.1f} s") from None


@router.post("/analyze", response_model=AnalyzeResponse, summary="Faces and emotions in a photo",
             responses=_errors(400, 408, 413, 415, 422, 429),
             openapi_extra=_body(IMAGE_MEDIA_TYPES))
async def analyze(request: Request,
                  annotate: bool = Query(False, description="also return the image with boxes and labels")
                  ) -> AnalyzeResponse:
    """Send a photo as the raw body or as the ``file`` field of a form; its type is read from its content."""
    settings, engine = request.app.state.settings, request.app.state.engine
    deadline = time.monotonic() + settings.request_timeout_s
    engine.ensure_capacity()
    data = await _within(read_upload(request, settings.max_image_bytes, "the image"),
                         settings.request_timeout_s, "the image")
    image_kind(data)  # refuse non-images before they take a worker

    def work(rec: Recognizer) -> AnalyzeResponse:
        start = time.perf_counter()
        rgb = decode_image(data, settings.max_image_pixels)
        result = rec(rgb)
        image = _data_url(rgb, result.faces) if annotate else None
        return AnalyzeResponse(width=result.width, height=result.height, faces=_faces(result),
                               model=rec.info.name, elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
                               annotated_image=image)

    return await engine.run(work, timeout=deadline - time.monotonic())


@router.get("/live", response_model=LiveInfo, summary="How to use the live WebSocket ws://HOST/v1/live")
async def live_info(request: Request) -> LiveInfo:
    """``/v1/live`` is a WebSocket (OpenAPI cannot describe one); a plain GET here says how to use it.

    Send each webcam frame as a binary message (JPEG, PNG or WebP); each reply is one JSON text
    message, ``{"frame": n, "width", "height", "faces": [{box, label, confidence, scores}],
    "elapsed_ms"}``, or ``{"frame": n, "error": {status, code, message}}`` for a refused frame
    (the connection stays open). Pages of other origins are refused at the handshake (403).
    """
    settings = request.app.state.settings
    return LiveInfo(websocket="/v1/live", send="one binary message per frame: JPEG, PNG or WebP",
                    reply="one JSON text message per frame: {frame, width, height, faces, elapsed_ms} or "
                          "{frame, error}", max_frame_bytes=settings.max_live_frame_bytes,
                    max_pixels=settings.max_live_pixels)


@router.get("/health", response_model=HealthResponse, summary="Liveness, load and limits")
async def health(request: Request) -> HealthResponse:
    state = request.app.state
    return HealthResponse(status="ok", version=__version__, model=state.engine.recognizer.info.name,
                          workers=state.engine.workers, pending=state.engine.pending, jobs_queued=state.jobs.queued,
                          uptime_s=round(time.time() - state.started, 3), limits=state.settings.limits())


@router.get("/models", response_model=ModelsResponse, summary="The loaded model and what else could be loaded")
async def models(request: Request) -> ModelsResponse:
    from ..inference import SHIPPED_MODELS, list_detectors
    from ..models import list_models

    rec: Recognizer = request.app.state.engine.recognizer
    loaded = ModelOut(name=rec.info.name, checkpoint=rec.checkpoint, labels=list(rec.labels),
                      input_size=rec.info.preprocessing.size, detector=rec.options.detector,
                      detect_max_side=getattr(rec.detector, "max_side", 0), loaded=True)
    return ModelsResponse(models=[loaded], registered=list_models(), shipped=dict(SHIPPED_MODELS),
                          detectors=list_detectors())


@router.get("/models/{name}", response_model=ModelCard, responses=_errors(404, 422),
            summary="A shipped model's card: scores, calibration, tuning, limits")
async def model_card(name: str = PathParam(max_length=64, description="a shipped model: default, fast, accurate")
                     ) -> ModelCard:
    from ..inference import SHIPPED_MODELS
    from ..inference.card import model_card as card_text
    from ..inference.card import shipped_records

    if name not in SHIPPED_MODELS:
        raise ApiError(404, "model_not_found", f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return ModelCard(name=name, description=SHIPPED_MODELS[name], card=card_text(name),
                     records=shipped_records(name))


async def _save_video(request: Request, target: Path, limit: int) -> str:
    """Stream the upload into ``target``; return its sniffed kind, refusing non-videos early."""
    head, kind = b"", None
    with open(target, "wb") as handle:
        async for chunk in upload_chunks(request, limit, "the video"):
            if kind is None:
                head += chunk
                if len(head) < 32:
                    continue
                kind, chunk = _video_kind(head), head
            handle.write(chunk)
        if kind is None:  # fewer than 32 bytes in all
            if not head:
                raise ApiError(400, "empty_body", "the video is empty: send the file's bytes")
            kind = _video_kind(head)
            handle.write(head)
    return kind


def _video_kind(head: bytes) -> str:
    kind = sniff(head[:32])
    if kind in VIDEO_KINDS:
        return kind
    found = f"a {kind} image (photos go to POST /v1/analyze)" if kind in IMAGE_KINDS else describe(head)
    raise ApiError(415, "unsupported_media_type",
                   f"the content is not a supported video (mp4/mov, webm/mkv, avi); got {found}")


def _job_out(state: dict[str, Any]) -> JobOut:
    fields = {k: state[k] for k in JobOut.model_fields if k in state and k != "results"}
    results = {n: f"/v1/jobs/{state['id']}/results/{n}" for n in RESULTS} if state["state"] == "done" else {}
    return JobOut(**fields, results=results)


@router.post("/jobs", status_code=202, response_model=JobOut, summary="Upload a video for analysis",
             responses=_errors(400, 408, 413, 415, 422, 429),
             openapi_extra=_body(VIDEO_MEDIA_TYPES))
async def create_job(request: Request, response: Response) -> JobOut:
    """Returns at once with the job id; poll ``GET /v1/jobs/{id}`` for progress, then download the results."""
    settings, jobs = request.app.state.settings, request.app.state.jobs
    job_id, folder = jobs.new_folder()
    try:
        upload = folder / ".upload"
        kind = await _within(_save_video(request, upload, settings.max_video_bytes),
                             settings.video_upload_timeout_s, "the video")
        target = folder / f"input.{kind}"
        os.replace(upload, target)
        info = await run_in_threadpool(probe_video, target, settings)
    except BaseException:
        jobs.abandon(folder)
        raise
    state = jobs.submit(job_id, target.name, info)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return _job_out(state)


@router.get("/jobs", response_model=JobList, summary="All jobs, newest first")
async def list_jobs(request: Request) -> JobList:
    return JobList(jobs=[_job_out(s) for s in request.app.state.jobs.list_jobs()])


@router.get("/jobs/{job_id}", response_model=JobOut, responses=_errors(404, 422), summary="A job's progress")
async def get_job(request: Request, job_id: str = JOB_ID) -> JobOut:
    return _job_out(request.app.state.jobs.get(job_id))


@router.get("/jobs/{job_id}/results/{name}", responses={**_errors(404, 409, 422), 200: {"content": {
            "text/csv": {}, "application/json": {}, "video/mp4": {}}}}, response_class=FileResponse,
            summary="Download a finished job's per-frame table (CSV/JSON) or annotated video")
async def job_result(request: Request, name: ResultName, job_id: str = JOB_ID) -> FileResponse:
    path = request.app.state.jobs.result_path(job_id, name.value)
    return FileResponse(path, media_type=RESULTS[name.value], filename=f"ferkit-{job_id[:8]}-{name.value}")


@router.delete("/jobs/{job_id}", status_code=204, responses=_errors(404, 409, 422), summary="Delete a finished job")
async def delete_job(request: Request, job_id: str = JOB_ID) -> Response:
    request.app.state.jobs.delete(job_id)
    return Response(status_code=204)
