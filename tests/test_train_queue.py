"""scripts/train_queue.sh: runs a queue file in order, skips finished runs, resumes interrupted ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthetic import write_fer2013_csv

ROOT = Path(__file__).resolve().parents[1]
TINY = ("model.name=ferkit_cnn_small model.input_size=24 train.batch_size=16 train.bf16=false "
        "train.channels_last=false augment.rotation=0 data.cache_dir=")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run_queue(*queues: Path, cwd: Path, returncode: int = 0) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "train_queue.sh"), *map(str, queues)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == returncode, done.stderr
    return done.stdout + done.stderr


def test_queue_trains_in_order_skips_done_and_resumes(tmp_path):
    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})
    config = ROOT / "configs" / "default.toml"
    queue = tmp_path / "queue.txt"
    queue.write_text(
        "# a comment, then two runs\n\n"
        f"runs/a/first {config} data.path={csv} train.epochs=1 {TINY}\n"
        f"runs/a/second {config} data.path={csv} train.epochs=2 {TINY}\n")
    log = _run_queue(queue, cwd=tmp_path)
    first, second = tmp_path / "runs/a/first", tmp_path / "runs/a/second"
    assert log.index("train runs/a/first") < log.index("train runs/a/second")
    assert "FAILED" not in log and "queue finished" in log
    for run in (first, second):
        assert (run / "metrics.json").is_file() and (run / "best.pt").is_file()
    assert len(torch.load(second / "last.pt", weights_only=True)["history"]) == 2

    # Second pass: the first run is skipped; the second, its metrics removed as if killed, is resumed.
    stamp = (first / "best.pt").stat().st_mtime_ns
    (second / "metrics.json").unlink()
    log = _run_queue(queue, cwd=tmp_path)
    assert "done: runs/a/first" in log and "train runs/a/second --resume" in log
    assert (first / "best.pt").stat().st_mtime_ns == stamp
    assert json.loads((second / "metrics.json").read_text())["test_images"] == 21


def test_queue_runs_script_lines_with_resume_and_files_in_order(tmp_path):
    script = tmp_path / "echo_args.py"
    script.write_text("import sys\nprint('ARGS', ' '.join(sys.argv[1:]))\n")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(f"runs/d/stage2 {script} one.toml two.toml out_dir=runs/d\n")
    second.write_text(f"# second file\nruns/e/x {script} three.toml\n")
    log = _run_queue(first, second, cwd=tmp_path)
    assert "script runs/d/stage2" in log
    assert log.index("ARGS one.toml two.toml out_dir=runs/d --resume") < log.index("ARGS three.toml --resume")
    assert "no queue file" in _run_queue(first, tmp_path / "missing.txt", cwd=tmp_path, returncode=2)
