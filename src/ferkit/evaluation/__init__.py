"""Evaluation: metrics (pure functions), reports, confusion and reliability plots, protocols, TTA prediction,
model size, Grad-CAM, calibration."""

from .confusion import plot_confusion
from .ensemble import evaluate_ensemble
from .gradcam import CamResult, grad_cam, plot_gradcam, plot_split_gradcam
from .metrics import (
    McNemarResult,
    accuracy,
    balanced_accuracy,
    bootstrap_accuracy_ci,
    confusion_matrix,
    expected_calibration_error,
    log_loss,
    macro_f1,
    mcnemar,
    normalize_confusion,
    per_class_precision_recall_f1,
    reliability_bins,
    top_k_accuracy,
)
from .model_size import count_multiply_adds, count_parameters, measure_latency, size_on_disk_mb, state_dict_mb
from .predict import TTA_MODES, TTA_REPORT_NAMES, evaluate_model, evaluate_with_tta, predict_proba, tta_views
from .protocols import RoundsResult, random_rounds
from .reliability import plot_reliability
from .report import ClassificationReport

__all__ = [
    "TTA_MODES",
    "TTA_REPORT_NAMES",
    "CamResult",
    "ClassificationReport",
    "McNemarResult",
    "RoundsResult",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_accuracy_ci",
    "confusion_matrix",
    "count_multiply_adds",
    "count_parameters",
    "evaluate_ensemble",
    "evaluate_model",
    "evaluate_with_tta",
    "grad_cam",
    "expected_calibration_error",
    "log_loss",
    "macro_f1",
    "mcnemar",
    "measure_latency",
    "normalize_confusion",
    "per_class_precision_recall_f1",
    "plot_confusion",
    "plot_gradcam",
    "plot_reliability",
    "plot_split_gradcam",
    "predict_proba",
    "random_rounds",
    "reliability_bins",
    "size_on_disk_mb",
    "state_dict_mb",
    "top_k_accuracy",
    "tta_views",
]
