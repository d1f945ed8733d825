"""``ferkit serve``: check the optional dependencies, size the thread pools, run uvicorn."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket

from ..errors import FerkitError
from ..io import output_folder
from .settings import LOOPBACK_HOSTS, MB, ServeSettings

log = logging.getLogger(__name__)

REQUIRED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart", "websockets": "websockets"}


def check_dependencies() -> None:
    """Raise a FerkitError naming the missing packages of the ``serve`` extra."""
    missing = [pkg for module, pkg in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise FerkitError(f"ferkit serve needs {', '.join(missing)}: pip install 'ferkit[serve]'")


def computation_threads(threads: int | None, workers: int | None) -> int:
    """Threads per computation: ``threads``, else ``OMP_NUM_THREADS``, else the cores split between the workers."""
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])  # the user's own setting wins
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return threads


def check_port(host: str, port: int) -> None:
    """Raise a FerkitError when ``port`` is no port or ``host:port`` cannot be listened on (in use, not local).

    Binds a socket the way uvicorn will (IPv6 when the host has a colon, SO_REUSEADDR) and closes it again.
    """
    if not 0 <= port <= 65535:
        raise FerkitError(f"--port {port}: ports run from 0 to 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:
            raise FerkitError(f"--host {host}: not a name or address to listen on ({exc.strerror})") from None
        except OSError as exc:
            raise FerkitError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, threads: int | None = None) -> None:
    """Run the service until interrupted.

    ``threads`` is the OpenMP/PyTorch thread count of each computation (the face detector and
    the model); by default the cores are split between the inference workers (2 cores, 2
    workers: 1 thread each), so parallel requests do not oversubscribe the CPU. The detector
    releases the GIL, so workers run detections side by side.
    """
    check_dependencies()
    check_port(host, port)  # in use or no port: said now, not after the model has loaded
    output_folder(settings.jobs_dir, "jobs folder")  # a bad one fails here, not inside the server's start-up
    threads = computation_threads(threads, settings.workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when the detector's OpenMP runtime starts
    import torch
    import uvicorn

    from .app import create_app

    torch.set_num_threads(threads)
    log.info("%d inference worker(s) x %d thread(s)", settings.workers, threads)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the service has no authentication; expose it only on trusted networks", host)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=15,
                ws_max_size=max(16 * 2**20, 2 * settings.max_live_frame_bytes))


def allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...]:
    """The Host names to answer to: the loopback names and ``host`` itself, plus ``extra``; any on 0.0.0.0/::."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return tuple(dict.fromkeys([*LOOPBACK_HOSTS, host.strip("[]"), *extra]))


def _service_options(args: argparse.Namespace):
    """The recognition options of ``ferkit serve``: onnxruntime gets the threads per computation too."""
    import torch

    from ..cli.common import options
    from ..inference.backends import AUTO, auto_backend

    chosen = options(args)
    backend = auto_backend(chosen.model, torch.device("cpu")) if chosen.backend == AUTO else chosen.backend
    threads = None if backend == "torch" else computation_threads(args.threads, args.workers)  # torch: set globally
    return chosen.replace(threads=threads)


def serve_command(args: argparse.Namespace) -> int:
    """The ``ferkit serve`` subcommand."""
    if args.jobs_max_mb < 1:
        raise FerkitError(f"--jobs-max-mb must be at least 1, got {args.jobs_max_mb}")
    kwargs = {"options": _service_options(args), "allowed_origins": tuple(args.allow_origin),
              "allowed_hosts": allowed_hosts(args.host, args.allow_host), "max_jobs_bytes": args.jobs_max_mb * MB}
    if args.jobs_dir:
        kwargs["jobs_dir"] = args.jobs_dir
    if args.workers is not None:  # 0 is refused by the settings, not taken as the default
        kwargs["workers"] = args.workers
    serve(ServeSettings(**kwargs), host=args.host, port=args.port, threads=args.threads)
    return 0
