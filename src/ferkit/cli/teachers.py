"""``ferkit teachers``: cache classifiers' probabilities and choose a teacher ensemble."""

from __future__ import annotations

import argparse

NAME = "teachers"
HELP = "Cache FER2013 classifiers' probabilities and choose a teacher ensemble on PublicTest."
EXAMPLES = """examples:
  ferkit teachers checkpoints/*_cnn_fer2013_s?.pt checkpoints/default_v2.pt --data ../shared/data/fer2013/fer2013.csv.gz
  (each model's probabilities on Training, its mirror images, PublicTest and PrivateTest are cached once in
   ~/.cache/ferkit/teachers; the ensemble and its temperature are chosen on PublicTest)
  ferkit teachers runs/xfit/default_v2 checkpoints/default_v2.pt --data fer2013.csv.gz   # a cross-fitted teacher:
  (runs/xfit/default_v2/f0 ... f4, each trained without one fold of Training, give every face out-of-fold;
   the member is named default_v2_xfit, a run's best.pt after its run folder, NAME-fp16.pt after NAME)
  ferkit teachers checkpoints/xfit/default_v2 --data fer2013.csv.gz   # the same teacher from the folds' records
  (ferkit publish runs/xfit/default_v2/f0 --name xfit/default_v2/f0 wrote checkpoints/xfit/default_v2/f0.oof.npz)
  ferkit teachers checkpoints/default_v*.pt checkpoints/se_cnn_*.pt --data fer2013.csv.gz --no-training --max-members 4
  (an ensemble to ship: PublicTest and PrivateTest only, an eighth of the work, at most four networks to run;
   then ferkit ensemble ... --weights ...)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit teachers``."""
    parser.add_argument("checkpoint", nargs="+", help="classifiers over the FER2013 classes; a folder of K runs "
                        "trained with data.folds=K data.fold=k (or of their published .oof.npz records) is one "
                        "cross-fitted teacher")
    parser.add_argument("--data", required=True, help="the FER2013 CSV (Training, PublicTest, PrivateTest)")
    parser.add_argument("--cache", default=None, help="cache folder (default ~/.cache/ferkit/teachers)")
    parser.add_argument("--out", default=None, help="also write the record as JSON here")
    parser.add_argument("--no-training", action="store_true", help="cache PublicTest and PrivateTest only: "
                        "enough to choose an ensemble to ship, not to distil a student from")
    parser.add_argument("--max-members", type=int, default=None, metavar="N",
                        help="choose at most N distinct members (the ensemble's compute); default no limit")


def run(args: argparse.Namespace) -> int:
    import json
    import shlex
    from pathlib import Path

    from ..config import DataConfig
    from ..data.sources import read_source
    from ..errors import FerkitError
    from ..evaluation.teachers import teacher_ensemble
    from ..io import atomic_write_text, user_cache_dir
    from ..training.store import in_store

    if args.max_members is not None and args.max_members < 1:
        raise FerkitError(f"--max-members {args.max_members}: give at least 1")
    data = read_source(DataConfig(format="fer2013", path=args.data))
    if data.splits is None:
        raise FerkitError(f"{args.data}: no Usage column; the teachers need Training, PublicTest and PrivateTest")
    cache = Path(args.cache) if args.cache else user_cache_dir("teachers")
    record = teacher_ensemble(args.checkpoint, data, cache, training=not args.no_training,
                              max_members=args.max_members)
    options = [*(["--no-training"] if args.no_training else []),
               *(["--max-members", str(args.max_members)] if args.max_members else [])]
    record["command"] = shlex.join(["ferkit", "teachers", *args.checkpoint, "--data", args.data, *options])
    for name, acc in record["members"].items():  # Training far above PublicTest: the member saw those faces
        train = f"  Training {acc['Training']:.4f}" if "Training" in acc else ""
        print(f"{name:40s} PublicTest {acc['PublicTest']:.4f}  PrivateTest {acc['PrivateTest']:.4f}{train}")  # noqa: T201
    for kind in ("uniform_mean", "selected"):
        r = record[kind]
        print(f"{kind:40s} PublicTest {r['PublicTest']['accuracy']:.4f}  "  # noqa: T201
              f"PrivateTest {r['PrivateTest']['accuracy']:.4f} {r['PrivateTest']['ci95']}")
    print(f"selected weights {record['selected']['weights']}, temperature {record['temperature']:.2f}")  # noqa: T201
    if args.out:  # runs/... is in the run store, where a student's train.teacher_cache finds it
        atomic_write_text(in_store(args.out), json.dumps(record, indent=2) + "\n")
        print(f"record written to {in_store(args.out)}")  # noqa: T201
    return 0
