"""Batch recognition of large collections of photos and videos into a resumable Parquet dataset, local or on Ray."""

from ..inference.sources import Source, expand_inputs
from .analyze import BatchSettings, InputResult, analyze_source, face_schema
from .run import ENGINES, BatchEngine, BatchSummary, run_batch
from .store import BatchStore, read_errors, read_faces, read_inputs

__all__ = [
    "ENGINES",
    "BatchEngine",
    "BatchSettings",
    "BatchStore",
    "BatchSummary",
    "InputResult",
    "Source",
    "analyze_source",
    "expand_inputs",
    "face_schema",
    "read_errors",
    "read_faces",
    "read_inputs",
    "run_batch",
]
