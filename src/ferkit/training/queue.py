"""``ferkit queue``: the runs of queue files trained one after another, resumably, one trainer at a time.

A queue file has one run a line, ``OUT_DIR/NAME CONFIG [key=value ...]`` (``#`` starts a comment), e.g.
``runs/system_c/system_c_scratch configs/system_c_resnet50_fer2013.toml model.init_from=``. A run whose folder holds
``metrics.json`` is done; one published under ``checkpoints/NAME.json`` (or ``checkpoints/PATH.json``, PATH its
folder below ``runs/``, or under any name whose metrics file names the run) is skipped; one with ``last.pt`` is
resumed; the rest start. A line ``OUT_DIR/NAME two-stage STAGE1 STAGE2 [key=value ...]`` runs System D's recipe
(:mod:`ferkit.training.two_stage`, resumed stage by stage; OUT_DIR/NAME is stage 2's run, done when it holds
``two_stage.json``; ``--lr1=RATE``, ``--lr2=RATE``, ``--steps=N`` and ``--stage1-override=key=value`` or
``--stage2-override=key=value`` on such a line are ``ferkit two-stage``'s options); one whose CONFIG is a Python
script runs ``python SCRIPT [args] --resume`` (the script itself resumes what it finished). Runs under ``runs/``
live in the run store (:mod:`ferkit.training.store`), so the same command continues the queue after a fresh
checkout. A queue whose lines read ``runs/...`` files that the store lacks and no earlier line trains (a published
run's weights after its store was lost) is refused before anything trains (:func:`unmet_inputs`).
A lock per core in the store refuses a second queue on a core a queue already trains on: two trainings on one core
slow each other many times over; queues pinned to different cores run side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NoReturn

from ..errors import FerkitError
from ..io import existing_file
from .store import in_store, run_store

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One line of a queue file: the run's folder, its config (or script) and its overrides."""

    run: str
    target: str
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        return PurePosixPath(self.run).name

    @property
    def published_names(self) -> tuple[str, ...]:
        """The names it may be published under: its folder's, and its path below ``runs/`` (``xfit/T/f0``:
        runs whose folders share a name, like a cross-fitted teacher's folds, are published in subfolders)."""
        below = PurePosixPath(self.run).relative_to("runs") if self.run.startswith("runs/") else None
        return (self.name, str(below)) if below and str(below) != self.name else (self.name,)

    @property
    def out_dir(self) -> str:
        return str(PurePosixPath(self.run).parent)

    @property
    def folder(self) -> Path:
        return in_store(self.run)

    @property
    def is_script(self) -> bool:
        return self.target.endswith(".py")

    @property
    def is_two_stage(self) -> bool:
        return self.target == "two-stage"


def read_queue(paths: Sequence[str | Path]) -> list[QueueEntry]:
    """Every entry of the queue files, in order; a malformed line is an error naming its file and line."""
    entries = []
    for path in paths:
        path = existing_file(path, "queue file")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) < 2 or "=" in words[0] or "=" in words[1]:
                raise FerkitError(f"{path}:{number}: expected 'OUT_DIR/NAME CONFIG [key=value ...]', got {line!r}")
            entries.append(QueueEntry(words[0], words[1], tuple(words[2:])))
    return entries


def entry_status(entry: QueueEntry, published: Path) -> str:
    """``script``, ``two-stage``, ``done`` (metrics.json; two_stage.json), ``published`` (published/NAME.json or
    published/PATH.json, or a metrics file there naming the run: :func:`published_runs`), ``resume`` (last.pt) or
    ``new``."""
    if entry.is_script:
        return "script"
    if (entry.folder / ("two_stage.json" if entry.is_two_stage else "metrics.json")).is_file():
        return "done"
    if any((published / f"{name}.json").is_file() for name in entry.published_names) \
            or entry.run.rstrip("/") in published_runs(published):
        return "published"
    if entry.is_two_stage:
        return "two-stage"
    return "resume" if (entry.folder / "last.pt").is_file() else "new"


def published_runs(published: Path) -> set[str]:
    """The run folders (``runs/...``) the metrics files under ``published`` were published from: their ``run``, or
    for files written before it was recorded, the folder of weights kept beside the run (``weights_path``)."""
    runs = set()
    for path in published.rglob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("run"), str):
            runs.add(record["run"].rstrip("/"))
        elif str(record.get("weights_path", "")).startswith("runs/"):
            runs.add(str(PurePosixPath(record["weights_path"]).parent))
    return runs


def config_inputs(config: Config) -> list[str]:
    """The files a training config reads: its data, starting weights and teachers (as written, ``runs/...`` too)."""
    return [path for path in (config.data.path, config.data.ferplus_path, config.model.init_from,
                              config.model.pretrained, *config.train.teacher, config.train.teacher_cache) if path]


def entry_inputs(entry: QueueEntry) -> list[str]:
    """The ``runs/...`` files a training or two-stage line reads (stage 2's start, made by stage 1, excepted); none
    for a script line, or a line whose config cannot be read (that line fails on its own when its turn comes)."""
    if entry.is_script:
        return []
    try:
        configs = two_stage_configs(entry)[:1] if entry.is_two_stage else [entry_config(entry)]
    except FerkitError:
        return []
    return [path for config in configs for path in config_inputs(config) if path.startswith("runs/")]


def unmet_inputs(entries: Sequence[QueueEntry], published: Path) -> list[str]:
    """One message for each ``runs/...`` file a line that will train reads which the run store lacks and no
    earlier line trains: above all the weights of a run skipped as published whose folder went with an old store."""
    statuses = [entry_status(entry, published) for entry in entries]  # each reads every published record
    skipped = [entry for entry, status in zip(entries, statuses) if status == "published"]
    problems, made = [], []
    for entry, status in zip(entries, statuses):
        if status not in ("done", "published"):
            for path in entry_inputs(entry):
                trained_earlier = any(PurePosixPath(path).is_relative_to(_made_under(e)) for e in made)
                if not trained_earlier and not in_store(path).exists():
                    problems.append(f"{entry.run} reads {path}, which the run store ({run_store()}) lacks"
                                    + _skipped_because(path, skipped, published))
            made.append(entry)
    return problems


def _made_under(entry: QueueEntry) -> PurePosixPath:
    """The folder a line writes: its run's, or for a two-stage line the one holding both stages."""
    return PurePosixPath(entry.out_dir if entry.is_two_stage else entry.run)


def _skipped_because(path: str, skipped: Sequence[QueueEntry], published: Path) -> str:
    """Why no line makes ``path`` although one names its folder: that line's run (of ``skipped``) is published."""
    for entry in skipped:
        if PurePosixPath(path).is_relative_to(_made_under(entry)):
            return (f"; {entry.run} is skipped as published in {published}, weights or not: give the run a new "
                    "name to train it again")
    return ""


def _cores() -> list[int]:
    """The cores this process may run on (``taskset`` narrows them); every core where the platform cannot say."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


@contextlib.contextmanager
def trainer_lock(folder: Path | None = None, cores: Sequence[int] | None = None) -> Iterator[list[Path]]:
    """Hold the store's lock of every core this process may run on (``cores``, default its affinity) for the block.

    A FerkitError if another queue holds one: two trainings sharing a core slow each other many times over, while
    queues pinned to different cores (``taskset -c N``, ``FERKIT_CORE=N``) train side by side.
    """
    folder = folder or run_store()
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:  # closing a file releases its lock
        paths = []
        for core in cores if cores is not None else _cores():
            path = folder / f".trainer-core{core}.lock"
            handle = held.enter_context(open(path, "a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FerkitError(f"another training queue holds {path}: one trainer per core (two trainings on "
                                  "one core slow each other down many times over)") from None
            paths.append(path)
        yield paths


def run_queue(paths: Sequence[str | Path], *, published: Path = Path("checkpoints"),
              time_limit_s: float = 0.0) -> list[tuple[str, str]]:
    """Train the queue's runs in order; ``[(run, outcome)]``.

    Outcomes: ``done``, ``published`` (skipped), ``busy`` (another queue trains it: skipped), ``finished``,
    ``paused`` (the time budget ended it at an epoch boundary: the queue stops there and the next call resumes
    it), ``failed`` (logged; the queue goes on), ``ok`` (a script line that succeeded). ``time_limit_s`` > 0 is
    the budget of this whole call, each run getting what is left as its ``train.time_limit_s``.
    """
    entries = read_queue(paths)  # every file checked before anything runs
    problems = unmet_inputs(entries, published)
    if problems:
        raise FerkitError("; ".join(problems))
    deadline = time.monotonic() + time_limit_s if time_limit_s > 0 else None
    outcomes: list[tuple[str, str]] = []
    with trainer_lock():
        for entry in entries:
            left = deadline - time.monotonic() if deadline is not None else 0.0
            if deadline is not None and left <= 0:
                log.info("== time budget spent before %s", entry.run)
                break
            outcome = _run_entry(entry, published, left)
            outcomes.append((entry.run, outcome))
            if outcome == "paused":
                break
    log.info("== queue finished: %s", ", ".join(f"{run} {outcome}" for run, outcome in outcomes) or "nothing to do")
    return outcomes


@contextlib.contextmanager
def _run_claimed(folder: Path) -> Iterator[bool]:
    """Claim a run for the block (a lock file beside its folder): True, or False while another queue trains it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.queue.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def listed_status(entry: QueueEntry, published: Path) -> str:
    """:func:`entry_status`, or ``training`` while a queue (this one or one on another core) trains the run."""
    status = entry_status(entry, published)
    if status in ("done", "published", "script") or not entry.folder.parent.is_dir():
        return status
    with _run_claimed(entry.folder) as claimed:
        return status if claimed else "training"


def entry_progress(entry: QueueEntry) -> str:
    """How far a training line's run (each stage of a two-stage line) has got: :func:`~.history.progress` of its
    ``history.csv``; ``''`` for a script line or a run that has not started."""
    from .history import progress, read_history_csv

    if entry.is_script:
        return ""
    configs = two_stage_configs(entry)[:2] if entry.is_two_stage else (entry_config(entry),)
    parts = []
    for stage, config in enumerate(configs, start=1):
        history = config.run_dir / "history.csv"
        if history.is_file():
            prefix = f"stage {stage}: " if len(configs) > 1 else ""
            parts.append(prefix + progress(read_history_csv(history), config.train.epochs))
    return "; ".join(parts)


def _run_entry(entry: QueueEntry, published: Path, time_limit_s: float) -> str:
    if entry_status(entry, published) in ("done", "published"):
        return _train_entry(entry, published, time_limit_s)  # nothing to train: only logged
    with _run_claimed(entry.folder) as claimed:
        if not claimed:
            log.info("== busy: %s (another queue trains it)", entry.run)
            return "busy"
        return _train_entry(entry, published, time_limit_s)


def _train_entry(entry: QueueEntry, published: Path, time_limit_s: float) -> str:
    status = entry_status(entry, published)  # read again under the claim: another queue may have just finished it
    if status in ("done", "published"):
        log.info("== %s: %s", status, entry.run)
        return status
    if status == "script":
        log.info("== script %s: %s %s --resume", entry.run, entry.target, " ".join(entry.overrides))
        done = subprocess.run([sys.executable, entry.target, *entry.overrides, "--resume"], stdin=subprocess.DEVNULL)
        return "ok" if done.returncode == 0 else "failed"
    if status == "two-stage":
        return _run_two_stage(entry, time_limit_s)
    from .run import train

    budget = [f"train.time_limit_s={time_limit_s:.3f}"] if time_limit_s > 0 else []
    log.info("== train %s%s (%s)", entry.run, " --resume" if status == "resume" else "", entry.folder)
    try:
        train(entry_config(entry, budget), resume=status == "resume")
    except Exception as exc:  # one broken run must not stop the queue
        log.error("== FAILED: %s: %s", entry.run, exc, exc_info=not isinstance(exc, FerkitError))
        return "failed"
    return "finished" if (entry.folder / "metrics.json").is_file() else "paused"


class _LineParser(argparse.ArgumentParser):
    """An argument parser whose errors are FerkitErrors (a queue line's mistake fails that run, not the queue)."""

    def error(self, message: str) -> NoReturn:
        raise FerkitError(f"{self.prog}: {message}")


def two_stage_options(words: Sequence[str]) -> tuple[list[str], list[str], dict]:
    """Split a two-stage line's words after its configs into each stage's ``key=value`` overrides (the shared ones,
    then ``--stageN-override``'s) and the recipe's options (``--lr1=RATE``, ``--lr2=RATE``, ``--steps=N``), read by
    ``ferkit two-stage``'s own parser."""
    from ..cli.two_stage import add_arguments, recipe_options, stage_overrides

    parser = _LineParser(prog="a two-stage queue line", add_help=False)
    add_arguments(parser)
    args = parser.parse_intermixed_args(["STAGE1", "STAGE2", *words])
    return *stage_overrides(args), recipe_options(args)


def entry_config(entry: QueueEntry, extra: Sequence[str] = ()) -> Config:
    """The config a training line runs: its file with the line's name, folder and overrides (then ``extra``)."""
    from ..config import load_config

    return load_config(entry.target, [f"name={entry.name}", f"out_dir={entry.out_dir}", *entry.overrides, *extra])


def two_stage_configs(entry: QueueEntry, shared: Sequence[str] = ()) -> tuple[Config, Config, dict]:
    """A two-stage line's two stage configs (its shared, then ``shared``, then each stage's overrides) and its
    recipe options; a FerkitError for a line without both configs or with a bad option."""
    from ..config import load_config

    if len(entry.overrides) < 2:
        raise FerkitError("a two-stage line needs STAGE1 and STAGE2 configs")
    (stage1, stage2), words = entry.overrides[:2], entry.overrides[2:]
    overrides1, overrides2, options = two_stage_options([*words, *shared])
    return load_config(stage1, overrides1), load_config(stage2, overrides2), options


def _run_two_stage(entry: QueueEntry, time_limit_s: float) -> str:
    """A ``two-stage STAGE1 STAGE2 [key=value ...] [--lr2=RATE ...]`` line, always resumable; ``paused`` when the
    budget ends a stage."""
    from .run import RunPaused
    from .two_stage import run_two_stage

    log.info("== two-stage %s: %s", entry.run, " ".join(entry.overrides[:2]))
    try:
        budget = [f"train.time_limit_s={time_limit_s:.3f}"] if time_limit_s > 0 else []
        first, second, options = two_stage_configs(entry, budget)  # the budget: a shared override
        run_two_stage(first, second, resume=True, **options)
    except RunPaused:
        return "paused"
    except FerkitError as exc:
        log.error("== FAILED: %s: %s", entry.run, exc)
        return "failed"
    return "finished"
