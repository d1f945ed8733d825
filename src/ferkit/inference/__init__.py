"""Face detection, the :class:`Recognizer`, typed results and drawing."""

from .detectors import Detection, create_detector, list_detectors
from .draw import draw_faces
from .faces import crop_face
from .images import load_rgb, save_rgb
from .recognizer import Recognizer
from .results import Face, ImageResult, results_to_dataframe, results_to_rows

__all__ = [
    "Detection",
    "Face",
    "ImageResult",
    "Recognizer",
    "create_detector",
    "crop_face",
    "draw_faces",
    "list_detectors",
    "load_rgb",
    "results_to_dataframe",
    "results_to_rows",
    "save_rgb",
]
