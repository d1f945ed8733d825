"""Publish a finished training run: fp16 weights under checkpoints/, their metrics file, curves and history.

    python scripts/publish_run.py runs/system_b/se_cnn_fer2013_s0 \
        --command "ferkit train configs/se_cnn_fer2013.toml train.seed=0 name=se_cnn_fer2013_s0 out_dir=runs/system_b"

Writes checkpoints/NAME.pt (the run's best.pt in fp16) and checkpoints/NAME.json: the run's metrics.json,
epochs run, why it stopped, training wall time, the machine, the command, and the committed fp16 file's own
accuracy on the run's test split (what ``ferkit evaluate`` on it prints). Copies history.csv to
docs/results/histories/NAME.csv and curves.png to docs/figures/NAME_curves.png. Weights over --max-mb
(default 50: a ResNet50 is ~86 MB in fp16) stay beside the run, outside the repository; the metrics file
records their sha256 and where they are, and is scored from that file.

A reconstruction run (``train.task = "reconstruct"``: an autoencoder that other runs start from with
``model.init_from=checkpoints/NAME.pt``) is published in fp32, as trained, with its test reconstruction error
from metrics.json: its starting point is then the same in every session.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

from ferkit.config import config_from_dict
from ferkit.data.sources import load_splits
from ferkit.evaluation import evaluate_model, size_on_disk_mb
from ferkit.evaluation.model_size import count_parameters
from ferkit.io import atomic_open, atomic_write_text
from ferkit.machine import describe as describe_machine
from ferkit.models import load_model
from ferkit.models.export import export_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", help="published name (default: the run folder's name)")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--note", default="", help="anything a reader must know (data subset, initialisation...)")
    parser.add_argument("--data", help="data path to re-check accuracy with (default: the run's config)")
    parser.add_argument("--max-mb", type=float, default=50.0, help="largest weights file committed (default 50)")
    args = parser.parse_args()

    run, name = args.run_dir, args.name or args.run_dir.name
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    target = Path("checkpoints") / f"{name}.pt"
    model, info = load_model(run / "best.pt")
    reconstruct = config_from_dict(info.config).train.task == "reconstruct"
    target.parent.mkdir(parents=True, exist_ok=True)
    if reconstruct:  # the file as trained: the loaded model is already what it holds
        with atomic_open(target, "wb") as handle:
            handle.write((run / "best.pt").read_bytes())
    else:
        export_checkpoint(run / "best.pt", target, "fp16")
        if size_on_disk_mb(target) > args.max_mb:  # too large for git: kept beside the run, recorded by hash
            target = Path(shutil.move(target, run / f"{name}-fp16.pt"))
        model, info = load_model(target)  # the published fp16 file is what gets scored
    data_cfg = config_from_dict(info.config).data
    if args.data:
        data_cfg = replace(data_cfg, path=args.data)
    record = {
        **metrics,
        "model": info.name,
        "parameters": count_parameters(model),
        "weights": "fp32" if reconstruct else "fp16",
        "size_mb": round(size_on_disk_mb(target), 2),
        "epochs_run": len(history),
        "train_seconds": round(sum(float(row["seconds"]) for row in history), 1),
        "machine": describe_machine(),
        "command": args.command,
    }
    if target.parent != Path("checkpoints"):
        record.update({"weights_committed": False, "weights_path": str(target.resolve()),
                       "weights_sha256": hashlib.sha256(target.read_bytes()).hexdigest()})
    if not reconstruct:
        report = evaluate_model(model, info, load_splits(data_cfg).test)
        record.update({
            "evaluate_command": f"ferkit evaluate {target} --data {data_cfg.path}"
                                + ("" if data_cfg.format == "fer2013" else " --split test"),
            "fp16_test_acc": report.accuracy,
            "fp16_test_macro_f1": report.macro_f1,
        })
    record["note"] = args.note
    atomic_write_text(Path("checkpoints") / f"{name}.json", json.dumps(record, indent=2) + "\n")
    histories = Path("docs/results/histories")
    histories.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "history.csv", histories / f"{name}.csv")
    if (run / "curves.png").exists():
        Path("docs/figures").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "curves.png", Path("docs/figures") / f"{name}_curves.png")
    scores = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith(("test_", "fp16_test_"))
                       and isinstance(v, float))
    print(f"{target}: {record['size_mb']} MB ({record['weights']}), {scores}; {record['epochs_run']} epochs, "
          f"{record['stop_reason']}")


if __name__ == "__main__":
    main()
