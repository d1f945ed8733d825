"""Model families, registered by name; build them with :func:`create_model`."""

from . import attention_cnn, autoencoder, backbone_ae, cnn, contrastive, ensemble, resnet, vgg  # noqa: F401  (register the model families)
from .checkpoint import ModelInfo, load_model, model_payload, read_checkpoint, require_classifier, save_model
from .registry import create_model, list_models, model_builder, model_task, register_model

__all__ = [
    "ModelInfo", "create_model", "list_models", "load_model", "model_payload", "read_checkpoint",
    "model_builder", "model_task", "register_model", "require_classifier", "save_model",
]
