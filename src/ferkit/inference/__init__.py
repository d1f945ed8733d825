"""Face detection, the :class:`Recognizer`, typed results, drawing, tracking, video and the shipped models' cards."""

from .card import model_card
from .detectors import Detection, create_detector, list_detectors
from .draw import draw_faces
from .faces import crop_face
from .images import load_rgb, save_rgb
from .options import Options
from .pipeline import (
    AnnotatedVideo,
    RowsSink,
    TableSink,
    TimelineSink,
    VideoSummary,
    analyze_photo,
    analyze_video,
    annotated_path,
    run_video,
)
from .recognizer import Recognizer
from .report import ReportPhoto, write_report
from .results import Face, ImageResult
from .rows import result_rows, results_to_dataframe, results_to_rows, row_columns
from .shipped import SHIPPED_MODELS
from .tables import TABLE_FORMATS, TableWriter, write_table
from .timeline import EmotionTimeline, TrackStats
from .tracking import FaceTracker, iou_matrix
from .video import (
    VIDEO_SUFFIXES,
    Frame,
    VideoInfo,
    VideoReader,
    VideoWriter,
    is_video_file,
    read_frames,
    track_video,
)
from .webcam import display_problem, run_webcam

__all__ = [
    "AnnotatedVideo",
    "Options",
    "RowsSink",
    "SHIPPED_MODELS",
    "TableSink",
    "TimelineSink",
    "run_video",
    "TABLE_FORMATS",
    "VIDEO_SUFFIXES",
    "Detection",
    "EmotionTimeline",
    "Face",
    "FaceTracker",
    "Frame",
    "ImageResult",
    "Recognizer",
    "ReportPhoto",
    "TableWriter",
    "TrackStats",
    "VideoInfo",
    "VideoReader",
    "VideoSummary",
    "VideoWriter",
    "analyze_photo",
    "analyze_video",
    "annotated_path",
    "create_detector",
    "crop_face",
    "display_problem",
    "draw_faces",
    "iou_matrix",
    "model_card",
    "is_video_file",
    "list_detectors",
    "load_rgb",
    "read_frames",
    "result_rows",
    "results_to_dataframe",
    "results_to_rows",
    "row_columns",
    "run_webcam",
    "save_rgb",
    "track_video",
    "write_report",
    "write_table",
]
