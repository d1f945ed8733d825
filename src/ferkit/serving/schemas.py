"""Typed request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class FaceOut(BaseModel):
    """One face: ``box`` is ``[x, y, w, h]`` in pixels of the uploaded image."""

    box: list[int] = Field(min_length=4, max_length=4, examples=[[216, 117, 197, 228]])
    detector_score: float
    label: str = Field(examples=["happy"])
    confidence: float = Field(ge=0, le=1)
    scores: dict[str, float] = Field(description="probability per label, in the model's label order")
    landmarks: list[list[int]] | None = Field(
        default=None, description="the detector's five [x, y] points (right eye, left eye, nose tip, right and "
                                  "left mouth corner), when it gives them")
    turn: float | None = Field(default=None, description="with landmarks: how far the head is turned, the nose's "
                               "offset from the eyes' midpoint in eye distances (0 frontal)")
    tilt: float | None = Field(default=None, description="with landmarks: the eye line's angle in degrees")


class AnalyzeResponse(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]
    model: str
    elapsed_ms: float = Field(description="time spent decoding and analysing, in milliseconds")
    annotated_image: str | None = Field(
        default=None, description="with ?annotate=true: the image with boxes and labels, as a data:image/jpeg URL")


class ErrorBody(BaseModel):
    status: int
    code: str = Field(examples=["unsupported_media_type"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])
    version: str
    model: str
    workers: int
    pending: int = Field(description="image requests in progress or waiting for a worker")
    jobs_queued: int
    uptime_s: float
    limits: dict[str, int | float]


class LiveInfo(BaseModel):
    """How to use the WebSocket ``/v1/live``."""

    websocket: str = Field(examples=["/v1/live"])
    send: str
    reply: str
    max_frame_bytes: int
    max_pixels: int


class ModelOut(BaseModel):
    name: str
    checkpoint: str
    labels: list[str]
    input_size: int
    detector: str
    detect_max_side: int = Field(description="faces are detected on a copy shrunk to this long side")
    loaded: bool


class ModelsResponse(BaseModel):
    models: list[ModelOut]
    registered: list[str] = Field(description="model architectures this build can load checkpoints of")
    shipped: dict[str, str] = Field(default_factory=dict,
                                    description="the models inside the package, by name (`ferkit serve --model NAME`)")
    detectors: list[str]


class ModelCard(BaseModel):
    name: str
    description: str
    card: str = Field(description="the model's card as text, as `ferkit models NAME` prints it")
    records: dict[str, dict[str, Any]] = Field(description="its records: how it was made and scored, float and int8")


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    interrupted = "interrupted"


class JobOut(BaseModel):
    id: str
    state: JobState
    progress: float = Field(ge=0, le=1)
    frames_done: int
    frames_total: int | None
    fps: float
    width: int
    height: int
    duration_s: float | None
    stride: int
    created: float
    error: str | None = None
    results: dict[str, str] = Field(default_factory=dict, description="result name -> download URL, when done")


class JobList(BaseModel):
    jobs: list[JobOut]

