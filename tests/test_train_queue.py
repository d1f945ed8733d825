"""scripts/train_queue.sh: runs a queue file in order, skips finished runs, resumes interrupted ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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


def _park(cwd: Path) -> str:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "park_runs.sh")], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_parked_run_resumes_in_a_fresh_checkout_and_published_runs_are_skipped(tmp_path):
    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})
    config = ROOT / "configs" / "default.toml"
    queue = tmp_path / "queue.txt"
    line = f"runs/p/cut {config} data.path={csv} train.epochs=2 {TINY}"
    # The first session's time runs out after epoch 1 of 2: last.pt but no metrics.json.
    queue.write_text(line + " train.time_limit_s=0.001\n")
    _run_queue(queue, cwd=tmp_path)
    run = tmp_path / "runs/p/cut"
    assert (run / "last.pt").is_file() and not (run / "metrics.json").exists()
    assert "parked: runs/p/cut" in _park(tmp_path)
    parked = tmp_path / "parked/runs/p/cut"
    assert sorted(p.name for p in parked.iterdir()) == ["best.pt", "config.toml", "last.pt"]

    # The next session's checkout has the parked copy but no runs/: the queue copies it back and resumes.
    shutil.rmtree(tmp_path / "runs")
    queue.write_text(line + "\n")
    log = _run_queue(queue, cwd=tmp_path)
    assert "unparked parked/runs/p/cut" in log and "train runs/p/cut --resume" in log
    history = torch.load(run / "last.pt", weights_only=True)["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert (run / "metrics.json").is_file()
    # Parking again drops the copy of the run that has now finished.
    assert "unparked (finished): runs/p/cut" in _park(tmp_path) and not parked.exists()

    # A run whose checkpoints/NAME.json exists was published in an earlier session: skipped, not retrained.
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "cut.json").write_text("{}")
    log = _run_queue(queue, cwd=tmp_path)
    assert "published: runs/p/cut" in log and not run.exists()


def test_resume_training_starts_the_queue_from_a_frozen_copy_in_the_background(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "src" / "ferkit", repo / "src" / "ferkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})
    (repo / "queue.txt").write_text(f"runs/r/tiny {ROOT / 'configs' / 'default.toml'} data.path={csv} "
                                    f"train.epochs=1 {TINY}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fixture"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["FERKIT_NICE"] = "0"  # not starved by a real training queue at nice 19 beside the test suite
    script = repo / "scripts" / "resume_training.sh"
    # Two starts at once: exactly one queue runs, the other is refused (one training at a time).
    starts = [subprocess.Popen(["bash", str(script), "queue.txt"], cwd=repo, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((proc.wait(timeout=60), proc.stderr.read()) for proc in starts)
    assert [rc for rc, _ in outcomes] == [0, 1], outcomes
    assert "already running" in outcomes[1][1]
    snapshots = list(tmp_path.glob("train-snapshot-*"))
    assert len(snapshots) == 1 and (snapshots[0] / "src" / "ferkit").is_dir()
    # While it runs, a later start is refused too.
    again = subprocess.run(["bash", str(script), "queue.txt"], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=60)
    log = repo / "runs" / "queue.log"
    deadline = time.monotonic() + 300
    while "queue finished" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "queue finished" in log.read_text() and "FAILED" not in log.read_text(), log.read_text()[-2000:]
    assert log.read_text().count("train runs/r/tiny") == 1  # one queue ran it
    assert (repo / "runs" / "r" / "tiny" / "metrics.json").is_file()
    assert again.returncode == 1 and "already running" in again.stderr


def test_parked_runs_are_tracked_by_git_while_runs_stay_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the project")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("runs/system_a/x/last.pt")
    assert not ignored("parked/runs/system_a/x/last.pt")
