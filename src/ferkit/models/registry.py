"""Model registry: builders register under a name; :func:`create_model` is the one front door."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..errors import FerkitError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}


def register_model(name: str | None = None, *, task: str = "classify") -> Callable:
    """Decorator registering a builder under ``name`` (default: its own name); a duplicate name raises.

    ``task`` says what the model outputs: ``classify`` (class scores), ``reconstruct`` (its input) or
    ``contrast`` (unit-length embeddings for contrastive pre-training).
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _BUILDERS:
            raise ValueError(f"model {key!r} is already registered")
        _BUILDERS[key] = fn
        _TASKS[key] = task
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def model_task(name: str) -> str:
    """``classify``, ``reconstruct`` or ``contrast``: what the model registered under ``name`` outputs."""
    model_builder(name)
    return _TASKS[name]


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``; an unknown name lists the valid ones."""
    if name not in _BUILDERS:
        raise FerkitError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _BUILDERS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered under ``name`` with its keyword arguments (checked by name)."""
    builder = model_builder(name)
    params = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise FerkitError(f"model {name!r} takes no argument(s) {unknown}; valid: {sorted(params)}")
    return builder(**kwargs)
