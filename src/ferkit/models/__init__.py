"""Model families, registered by name; build them with :func:`create_model`."""

from . import cnn  # noqa: F401  (registers the CNN family)
from .checkpoint import ModelInfo, load_model, save_model
from .registry import create_model, list_models, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "load_model", "register_model", "save_model"]
