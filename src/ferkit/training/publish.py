"""``ferkit publish``: a finished run's small artefacts into the repository, never its training state.

Writes ``checkpoints/NAME.pt`` (the run's best.pt in fp16) and ``checkpoints/NAME.json``: the run's
metrics.json, epochs run, why it stopped, training wall time, the machine, the command, and the
published fp16 file's own accuracy on the run's test split (what ``ferkit evaluate`` on it prints).
Copies history.csv to ``docs/results/histories/NAME.csv`` and curves.png to ``docs/figures/NAME_curves.png``.
Weights over ``max_mb`` (a ResNet50 is ~86 MB in fp16) stay beside the run, outside the repository; the
metrics file records their sha256 and where they are, and is scored from that file. A pre-training run
(an autoencoder or a contrastive body other runs start from with ``model.init_from=checkpoints/NAME.pt``) is
published in fp32, as trained, with its test loss: its starting point is then the same in every session.
A fold run of a cross-fitted teacher (``data.folds`` > 0) also writes ``checkpoints/NAME.oof.npz``, its
out-of-fold probabilities (:func:`ferkit.evaluation.cross_fit.write_fold_record`), so the teacher can be assembled
after the run store is gone.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

from ..config import PRETRAIN_TASKS, DataConfig, config_from_dict
from ..data.sources import load_splits, read_source
from ..errors import FerkitError
from ..evaluation import evaluate_model, size_on_disk_mb
from ..evaluation.cross_fit import RECORD_SUFFIX, write_fold_record
from ..evaluation.model_size import count_parameters
from ..io import atomic_open, atomic_write_text, existing_file, file_sha256
from ..machine import describe as describe_machine
from ..models import load_model, read_checkpoint
from ..models.export import export_checkpoint
from .history import read_history_csv, write_epoch_table
from .store import as_runs_path

log = logging.getLogger(__name__)


def publish_run(run: Path, command: str, *, name: str | None = None, note: str = "", data: str | None = None,
                max_mb: float = 50.0, repo: Path = Path(".")) -> dict:
    """Publish the finished run in folder ``run`` into the repository at ``repo``; returns the metrics record."""
    run, name = Path(run), published_name(name or Path(run).name)
    metrics = json.loads(existing_file(run / "metrics.json", "finished run's metrics (is the run done?)").read_text())
    history = read_history_csv(run / "history.csv")
    target, pretrain = _publish_weights(run, repo / "checkpoints" / f"{name}.pt", max_mb)
    model, info = load_model(target)  # the published file is what gets scored
    record = {**metrics, "model": info.name, "parameters": count_parameters(model),
              "weights": "fp32" if pretrain else "fp16", "size_mb": round(size_on_disk_mb(target), 2),
              "epochs_run": len(history), "train_seconds": round(sum(float(row["seconds"]) for row in history), 1),
              "machine": describe_machine(), "command": command, "run": as_runs_path(run)}
    if target.parent != repo / "checkpoints":
        record.update({"weights_committed": False, "weights_path": as_runs_path(target),
                       "weights_sha256": file_sha256(target)})
    if not pretrain:
        record.update(_fp16_scores(model, info, target, data))
    if config_from_dict(info.config).data.folds:
        record["fold_record"] = _publish_fold_record(target, info, data, repo / "checkpoints" / name)
    record["note"] = note
    atomic_write_text(repo / "checkpoints" / f"{name}.json", json.dumps(record, indent=2) + "\n")
    _copy_history_and_figures(run, name, repo)
    return record


def published_name(name: str) -> str:
    """``name`` checked: a relative path of plain parts (``default_v3``, ``xfit/default_v2/f0``), nothing that leaves
    ``checkpoints/`` or ``docs/``."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or "\\" in name or any(part in (".", "..") for part in parts):
        raise FerkitError(f"published name {name!r}: give a name or a relative path like xfit/default_v2/f0 "
                          "(no '..', no leading '/')")
    return "/".join(parts)


def _publish_weights(run: Path, target: Path, max_mb: float) -> tuple[Path, bool]:
    """Write the weights to ``target`` (pre-trained bodies in fp32 as trained, classifiers in fp16), or beside the
    run when they are over ``max_mb``; ``(where they are, whether the run is a pre-training)``."""
    pretrain = config_from_dict(read_checkpoint(run / "best.pt").get("config", {})).train.task in PRETRAIN_TASKS
    target.parent.mkdir(parents=True, exist_ok=True)
    if pretrain:
        with atomic_open(target, "wb") as handle:
            handle.write((run / "best.pt").read_bytes())
    else:
        export_checkpoint(run / "best.pt", target, "fp16")
    if size_on_disk_mb(target) > max_mb:  # too large for git: kept beside the run, recorded by hash
        target = Path(shutil.move(target, run / f"{target.stem}-{'fp32' if pretrain else 'fp16'}.pt"))
        log.info("%s is over %g MB: kept outside the repository", target, max_mb)
    return target, pretrain


def _data_settings(info, data: str | None) -> DataConfig:
    """The run's data settings, at ``data`` where given (the same data elsewhere on this machine)."""
    data_cfg = config_from_dict(info.config).data
    return replace(data_cfg, path=data) if data else data_cfg


def _publish_fold_record(target: Path, info, data: str | None, stem: Path) -> str:
    """A fold run of a cross-fitted teacher: its out-of-fold record (``STEM.oof.npz``, from the published weights),
    which a teacher folder of the K records reads as it would the K runs; returns its repository path."""
    record = write_fold_record(target, read_source(_data_settings(info, data)),
                               stem.with_name(stem.name + RECORD_SUFFIX))
    log.info("fold record %s written (%.2f MB)", record, size_on_disk_mb(record))
    return record.as_posix()


def _fp16_scores(model, info, target: Path, data: str | None) -> dict:
    """The published classifier's accuracy on its run's test split, and the command that reproduces it."""
    data_cfg = _data_settings(info, data)
    test = load_splits(data_cfg).test
    if test is None:
        raise FerkitError(f"{target}: the run's data settings give no test split to score the published weights on")
    report = evaluate_model(model, info, test)
    return {"evaluate_command": evaluate_command(as_runs_path(target), data_cfg),
            "fp16_test_acc": report.accuracy, "fp16_test_macro_f1": report.macro_f1}


def evaluate_command(path: str, data_cfg: DataConfig) -> str:
    """The ``ferkit evaluate`` line that scores ``path`` on the test split of a run with ``data_cfg``: FER2013's
    PrivateTest by default, else ``--split test``, which re-creates the run's own split (a random 70/30 split of
    every FER2013 row, FER+, a k-fold test fold)."""
    official = (data_cfg.format == "fer2013" and not data_cfg.ignore_splits
                and data_cfg.test_split == "PrivateTest")
    return f"ferkit evaluate {path} --data {data_cfg.path}" + ("" if official else " --split test")


#: A run's figures that publishing copies to ``docs/figures/NAME_<stem>.png`` where the run has them.
RUN_FIGURES = ("curves", "lr_find", "gradcam")
#: Where its test split's classification report and confusion matrix (``<run>/test/``) go, under docs/.
TEST_FILES = {"report.txt": "results/histories/{name}_report.txt", "confusion.png": "figures/{name}_confusion.png"}


def _copy_history_and_figures(run: Path, name: str, repo: Path) -> None:
    """The history (CSV and per-epoch table), figures and test report; for a two-stage run also stage 1's
    (``NAME_stage1_*``) and the summary of both stages' rates and scores (``two_stage.json``)."""
    histories, figures = repo / "docs" / "results" / "histories", repo / "docs" / "figures"
    for folder in (histories, figures):  # NAME may hold a subfolder (xfit/T/f0)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "history.csv", histories / f"{name}.csv")
    write_epoch_table(run / "history.csv", name, histories / f"{name}.md")
    for source, target in TEST_FILES.items():
        if (run / "test" / source).is_file():
            shutil.copyfile(run / "test" / source, repo / "docs" / target.format(name=name))
    folders = {name: run}
    if (run / "two_stage.json").is_file():
        shutil.copyfile(run / "two_stage.json", histories / f"{name}_two_stage.json")
        stage1 = Path(json.loads((run / "two_stage.json").read_text())["stage1"]["run"])
        folders[f"{name}_stage1"] = stage1
        if (stage1 / "history.csv").is_file():
            write_epoch_table(stage1 / "history.csv", f"{name}_stage1", histories / f"{name}_stage1.md")
    for prefix, folder in folders.items():
        for stem in RUN_FIGURES:
            if (folder / f"{stem}.png").is_file():
                shutil.copyfile(folder / f"{stem}.png", figures / f"{prefix}_{stem}.png")
