"""ferkit: facial emotion recognition in plain PyTorch.

Heavy modules load on first use, so ``import ferkit`` stays cheap and has no side effects.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "Recognizer", "__version__", "create_model", "list_models"]

_LAZY = {
    "create_model": ("ferkit.models", "create_model"),
    "list_models": ("ferkit.models", "list_models"),
    "Recognizer": ("ferkit.inference", "Recognizer"),
    "EMOTIONS": ("ferkit.labels", "EMOTIONS"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
