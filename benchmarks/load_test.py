"""Load test of `ferkit serve`: N concurrent clients on 127.0.0.1 for a bounded time.

Starts the server as a subprocess on a free port, sends a one-face 640x480 JPEG to
POST /v1/analyze from --clients threads (keep-alive connections) for --duration seconds, and
prints requests/s, p50/p95/p99 latency, errors (anything but 200) and the server's resident
memory before and after. With --live it also drives the WebSocket the page's webcam mode uses
(320x240 JPEG frames, two in flight) and prints updates/s.

    python benchmarks/load_test.py --clients 4 --duration 30
    python benchmarks/load_test.py --clients 4 --duration 30 --detect-side 320 --live
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT.parent / "shared" / "data" / "photos" / "single_face_pyfeat.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ServerProcess:
    """`python -m ferkit.cli serve` on a free 127.0.0.1 port, stopped with SIGINT (then SIGKILL)."""

    def __init__(self, extra: list[str], startup_timeout: float = 900.0) -> None:
        self.port = free_port()
        self.jobs = tempfile.mkdtemp(prefix="ferkit-load-jobs-")
        self.log = open(Path(self.jobs) / "server.log", "w+")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "ferkit.cli", "serve", "--port", str(self.port), "--jobs-dir", self.jobs, *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read()[-3000:]}")
            try:
                status, _ = self.request("GET", "/v1/health")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "image/jpeg"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log_text(self) -> str:
        self.log.flush()
        return (Path(self.jobs) / "server.log").read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def one_face_jpeg(photo: Path, size: tuple[int, int] = (640, 480)) -> bytes:
    """``photo`` letterboxed onto a gray 640x480 canvas, as a JPEG (quality 90)."""
    im = Image.open(photo).convert("RGB")
    im.thumbnail(size)
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(im, ((size[0] - im.width) // 2, (size[1] - im.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def http_load(port: int, body: bytes, clients: int, duration: float) -> dict:
    """``clients`` threads posting ``body`` back to back until ``duration`` s have passed."""
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = time.monotonic()
    end = start + duration

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/analyze", body=body, headers={"Content-Type": "image/jpeg"})
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                    server_ms.append(json.loads(payload)["elapsed_ms"])
                else:
                    errors[str(status)] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    ms = [v * 1000 for v in latencies]
    return {"clients": clients, "duration_s": round(wall, 2), "requests": len(ms) + sum(errors.values()),
            "ok": len(ms), "errors": dict(errors), "req_per_s": round(len(ms) / wall, 2),
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms, default=float("nan")), 1),
            "server_p50_ms": round(percentile(server_ms, 50), 1)}


def live_load(port: int, frame: bytes, duration: float, in_flight: int = 2) -> dict:
    """One WebSocket client as the page's webcam mode: ``in_flight`` frames outstanding, for ``duration`` s."""
    from websockets.sync.client import connect

    sent: list[float] = []
    latencies: list[float] = []
    errors = 0
    with connect(f"ws://127.0.0.1:{port}/v1/live", max_size=2**24) as ws:
        start = time.monotonic()
        for _ in range(in_flight):
            sent.append(time.perf_counter())
            ws.send(frame)
        replies = 0
        while True:
            reply = json.loads(ws.recv(timeout=60))
            latencies.append(time.perf_counter() - sent[replies])
            replies += 1
            errors += "error" in reply
            if time.monotonic() - start >= duration:
                break
            sent.append(time.perf_counter())
            ws.send(frame)
        wall = time.monotonic() - start
        for _ in range(len(sent) - replies):  # drain what is still in flight
            ws.recv(timeout=60)
    ms = [v * 1000 for v in latencies]
    return {"updates": replies, "updates_per_s": round(replies / wall, 2), "errors": errors,
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a photo with one face")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=None, help="passed to ferkit serve")
    parser.add_argument("--threads", type=int, default=None, help="passed to ferkit serve")
    parser.add_argument("--detect-side", type=int, default=None, help="passed to ferkit serve")
    parser.add_argument("--live", action="store_true", help="also measure the live WebSocket's updates/s")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser.parse_args()


def measure(server: ServerProcess, args: argparse.Namespace, report: dict) -> None:
    """Fill ``report`` with the HTTP load (and with ``--live`` the WebSocket's), memory and CPU per request."""
    body = one_face_jpeg(args.photo)
    status, payload = server.request("POST", "/v1/analyze", body)
    faces = len(json.loads(payload)["faces"]) if status == 200 else None
    if faces != 1:
        raise RuntimeError(f"the test photo should give one face; got status {status}, faces {faces}")
    for _ in range(5):  # warm-up, not counted
        server.request("POST", "/v1/analyze", body)
    report["rss_before_mb"] = round(rss_mb(server.proc.pid), 1)
    cpu = cpu_seconds(server.proc.pid)
    samples: list[float] = []
    done = threading.Event()

    def sample_rss() -> None:  # memory over the run: growth that levels off is warm-up, not a leak
        while not done.wait(args.duration / 6):
            samples.append(round(rss_mb(server.proc.pid), 1))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    report["http"] = http_load(server.port, body, args.clients, args.duration)
    done.set()
    sampler.join()
    report["rss_during_mb"] = samples
    # CPU time per request does not depend on what else the machine runs: 2 / it is the most
    # requests per second 2 idle cores could serve.
    report["http"]["server_cpu_ms_per_request"] = round(
        (cpu_seconds(server.proc.pid) - cpu) * 1000 / max(1, report["http"]["ok"]), 1)
    if args.live:
        report["live"] = live_load(server.port, one_face_jpeg(args.photo, (320, 240)), min(args.duration, 20.0))
    report["rss_after_mb"] = round(rss_mb(server.proc.pid), 1)
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    report["server_5xx_logged"] = len(re.findall(r'HTTP/1\.[01]" 5\d\d', server.log_text()))


def print_report(report: dict) -> None:
    h = report["http"]
    print(f"{h['clients']} clients, {h['duration_s']} s: {h['ok']} ok, {h['req_per_s']} req/s, "
          f"p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms, p99 {h['p99_ms']} ms, max {h['max_ms']} ms, "
          f"errors {h['errors'] or 0} (server-side p50 {h['server_p50_ms']} ms; server CPU "
          f"{h['server_cpu_ms_per_request']} ms per request)")
    if "live" in report:
        lv = report["live"]
        print(f"live: {lv['updates_per_s']} updates/s, p50 {lv['p50_ms']} ms, p95 {lv['p95_ms']} ms, "
              f"errors {lv['errors']}")
    print(f"server RSS {report['rss_before_mb']} MB before, {report['rss_during_mb']} MB during, "
          f"{report['rss_after_mb']} MB after; "
          f"load average {report['loadavg_before']} before, {report['loadavg_after']} after "
          f"({report['cpus']} CPUs); 5xx in the server log: {report['server_5xx_logged']}")


def main() -> int:
    args = parse_args()
    extra = [*(["--workers", str(args.workers)] if args.workers else []),
             *(["--threads", str(args.threads)] if args.threads else []),
             *(["--detect-side", str(args.detect_side)] if args.detect_side else [])]
    load_before = os.getloadavg()
    t0 = time.monotonic()
    server = ServerProcess(extra)
    report: dict = {"server_args": extra, "startup_s": round(time.monotonic() - t0, 1), "cpus": os.cpu_count(),
                    "loadavg_before": [round(v, 2) for v in load_before]}
    try:
        measure(server, args, report)
    finally:
        server.stop()
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if not report["http"]["errors"] and report["server_5xx_logged"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
