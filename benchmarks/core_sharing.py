"""Sharing two cores between a training run and a test run: which setting keeps both moving?

    python benchmarks/core_sharing.py [--model plain_cnn] [--steps 60] [--rounds 1]

Runs a training workload (``benchmarks/train_throughput.py MODEL``: bf16 training steps, images/s) and,
beside it, a test workload (a CPU-bound slice of the quick test suite, repeated until the training ends)
under each setting: alone; both with the default threads and no pinning; the trainer on core 1 with one
thread and the tests on core 0 with one thread (``taskset``); both with ``OMP_WAIT_POLICY=PASSIVE``; the
trainer under ``nice -n 19``. Prints the trainer's images/s and the tests' seconds per pass, each against
its figure alone. Run it with nothing else on the machine (pause a background trainer with SIGSTOP).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_metrics.py", "tests/test_tracking.py", "tests/test_keyframes.py", "tests/test_augment.py"]

#: name -> (trainer's environment and command prefix, tests' environment and command prefix)
SETTINGS: dict[str, tuple[dict, list[str], dict, list[str]]] = {
    "both on both cores, default threads": ({}, [], {}, []),
    "trainer: core 1, 1 thread; tests: core 0, 1 thread": (
        {"OMP_NUM_THREADS": "1"}, ["taskset", "-c", "1"], {"OMP_NUM_THREADS": "1"}, ["taskset", "-c", "0"]),
    "both OMP_WAIT_POLICY=PASSIVE, default threads": (
        {"OMP_WAIT_POLICY": "PASSIVE"}, [], {"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "trainer under nice -n 19, default threads": ({}, ["nice", "-n", "19"], {}, []),
}


def _trainer(model: str, steps: int, env: dict, prefix: list[str]) -> subprocess.Popen:
    command = [*prefix, sys.executable, "benchmarks/train_throughput.py", model, "--steps", str(steps)]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)


def _images_per_second(output: str, model: str) -> float:
    line = next(line for line in output.splitlines() if line.startswith(model))
    return float(line.split()[3])  # the bf16 column


def _test_pass(env: dict, prefix: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                    *TESTS], cwd=ROOT, env={**os.environ, **env}, capture_output=True, check=True)
    return time.perf_counter() - start


def measure(model: str, steps: int, setting: tuple | None) -> tuple[float | None, float | None]:
    """(trainer images/s, seconds per test pass) under ``setting``; None: that side alone."""
    if setting is None:
        alone = _trainer(model, steps, {}, [])
        return _images_per_second(alone.communicate()[0], model), _test_pass({}, [])
    train_env, train_prefix, test_env, test_prefix = setting
    trainer = _trainer(model, steps, train_env, train_prefix)
    passes = []
    while trainer.poll() is None:
        passes.append(_test_pass(test_env, test_prefix))
    output = trainer.communicate()[0]
    return _images_per_second(output, model), sum(passes) / len(passes) if passes else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="plain_cnn")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"# nproc {os.cpu_count()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    base_train, base_tests = measure(args.model, args.steps, None)
    print(f"| setting | trainer img/s ({args.model}, bf16) | vs alone | tests s/pass | vs alone |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| each alone | {base_train:.0f} | 1.00x | {base_tests:.1f} | 1.00x |", flush=True)
    for name, setting in SETTINGS.items():
        rate, seconds = measure(args.model, args.steps, setting)
        tests = f"{seconds:.1f} | {base_tests / seconds:.2f}x" if seconds else "— | —"
        print(f"| {name} | {rate:.0f} | {rate / base_train:.2f}x | {tests} |", flush=True)


if __name__ == "__main__":
    main()
