"""Who may call the service: a guard that refuses other web pages (403) and foreign ``Host`` headers.

A browser attaches ``Origin`` to every cross-origin POST, DELETE and WebSocket, so a page the user
happens to visit cannot drive the local service: its requests carry an origin that is neither the
service's own nor one the user allowed. Checking ``Host`` against the names the service answers to
stops DNS rebinding (a hostile name re-pointed at 127.0.0.1, which makes the page same-origin).
Requests without ``Origin`` (curl, scripts, the page's own GETs) pass.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .settings import ServeSettings

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_name(host: str) -> str:
    """``Host`` header -> its name without the port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_key(url: str, default_scheme: str = "http") -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or base URL, ws/wss folded into http/https; None if unparsable."""
    try:
        parts = urlsplit(url if "://" in url else f"{default_scheme}://{url}")
        port = parts.port
    except ValueError:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme]


def refusal(host: str | None, origin: str | None, scheme: str, settings: ServeSettings) -> str | None:
    """Why a request with these headers is refused, or None when it may be served."""
    if "*" not in settings.allowed_hosts and _host_name(host or "") not in settings.allowed_hosts:
        return (f"Host {host!r} is not a name this service answers to ({', '.join(settings.allowed_hosts)}); "
                "start it with --allow-host NAME to add one")
    if origin is None:
        return None
    origin = origin.strip().rstrip("/").lower()
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return None
    own = _origin_key(host or "", scheme)
    if own is not None and _origin_key(origin) == own:
        return None
    return (f"cross-origin request from {origin!r} refused: only the service's own page may call it; "
            "start it with --allow-origin ORIGIN to allow another")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class OriginGuard:
    """ASGI middleware: HTTP requests and WebSockets that :func:`refusal` names are answered 403."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        problem = refusal(_header(scope, b"host"), _header(scope, b"origin"), scheme, self.settings)
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await _forbidden(send, problem)
        else:  # closing before accepting makes the server answer the handshake with 403
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})


async def _forbidden(send: Send, message: str) -> None:
    body = json.dumps({"error": {"status": 403, "code": "forbidden_origin", "message": message}}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
