"""`ferkit serve`: its options, the missing-extra message, content sniffing, and a real server process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ferkit.cli import _parser, main
from ferkit.errors import FerkitError
from ferkit.inference.options import DEFAULT_DETECT_SIDE
from ferkit.serving import ServeSettings
from ferkit.serving.server import check_port


def test_serve_options_default_to_this_machine_only():
    args = _parser().parse_args(["serve"])
    assert (args.host, args.port, args.model, args.workers, args.threads) == ("127.0.0.1", 8000, None, None, None)
    assert (args.detect_side, args.backend) == (DEFAULT_DETECT_SIDE, "auto")  # the options of every command
    args = _parser().parse_args(["serve", "--port", "9001", "--workers", "3", "--jobs-dir", "j"])
    assert (args.port, args.workers, args.jobs_dir) == (9001, 3, "j")


def test_missing_serve_extra_is_a_clear_error(monkeypatch, capsys):
    import importlib.util

    from ferkit.serving import server

    real = importlib.util.find_spec
    monkeypatch.setattr(server.importlib.util, "find_spec", lambda name: None if name == "multipart" else real(name))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "python-multipart" in err and "pip install 'ferkit[serve]'" in err


def test_importing_ferkit_serving_does_not_import_fastapi():
    code = "import sys, ferkit.serving; print('fastapi' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("bad", [{"workers": 0}, {"max_image_bytes": 0}, {"request_timeout_s": 0.0},
                                 {"max_video_seconds": -1.0}])
def test_settings_refuse_nonsense(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ServeSettings(**bad)


@pytest.mark.parametrize(("head", "kind"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"), (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
    (b"GIF89a\x01\x00", "gif"), (b"BM" + b"\x00" * 30, "bmp"), (b"II*\x00\x08\x00", "tiff"),
    (b"\x00\x00\x00\x18ftypisom", "mp4"), (b"\x00\x00\x00\x14ftypqt  ", "mp4"), (b"\x00\x00\x00\x18ftypheic", "heif"),
    (b"\x1a\x45\xdf\xa3\x9f", "webm"), (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
    (b"<html><body>", None), (b"", None), (b"BM", None),
])
def test_sniff_reads_the_type_from_the_first_bytes(head, kind):
    pytest.importorskip("fastapi", reason="needs the serve extra")
    from ferkit.serving.uploads import sniff

    assert sniff(head) == kind


@pytest.mark.slow
def test_ferkit_serve_runs_a_real_server_and_stops_on_ctrl_c(tmp_path):
    pytest.importorskip("uvicorn", reason="needs the serve extra")
    from serving_support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port), "--jobs-dir",
                             str(tmp_path / "jobs"), "--workers", "1", "--detect-side", "480"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as r:
                    health = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, "no answer from ferkit serve"
                time.sleep(0.2)
        assert health["status"] == "ok" and health["workers"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as r:
            assert json.load(r)["models"][0]["detect_max_side"] == 480
        assert (tmp_path / "jobs").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "1 inference worker(s) x" in out


def test_serve_gives_onnxruntime_the_threads_per_computation_but_not_torch():
    from ferkit.serving.server import _service_options

    torch_options = _service_options(_parser().parse_args(["serve", "--backend", "torch", "--threads", "1"]))
    assert torch_options.threads is None and torch_options.recognizer().backend_name == "torch"
    int8_options = _service_options(_parser().parse_args(["serve", "--backend", "int8", "--threads", "1"]))
    assert int8_options.threads == 1 and int8_options.recognizer().backend_name == "int8"


def test_check_port_refuses_a_port_in_use_and_a_number_that_is_no_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FerkitError, match=f"127.0.0.1 port {port}: .*in use"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again once closed
    with pytest.raises(FerkitError, match="--port 99999: ports run from 0 to 65535"):
        check_port("127.0.0.1", 99999)


@pytest.mark.parametrize(("argv", "message"), [(["--port", "-1"], "--port -1"),
                                               (["--workers", "0"], "workers must be at least 1, got 0"),
                                               (["--jobs-max-mb", "0"], "--jobs-max-mb must be at least 1, got 0")])
def test_serve_refuses_bad_options_without_a_traceback(argv, message, capsys):
    pytest.importorskip("uvicorn", reason="needs the serve extra")
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
