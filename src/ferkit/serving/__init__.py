"""The web service and its page: ``create_app()`` (FastAPI), started by ``ferkit serve``.

Needs the ``serve`` extra (``pip install 'ferkit[serve]'``); FastAPI is imported only when
:func:`create_app` is first used, so ``import ferkit.serving`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'ferkit.serving' has no attribute {name!r}")
