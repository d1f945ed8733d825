"""``ferkit two-stage``: System D's frozen -> unfrozen transfer with an LR search per stage."""

from __future__ import annotations

import argparse

NAME = "two-stage"
HELP = ("Freeze-then-unfreeze transfer: an LR search and one-cycle for the head, then a second search and "
        "discriminative rates for all; Grad-CAM at the end.")
EXAMPLES = """examples:
  ferkit two-stage configs/system_d_vgg16_bn_stage1.toml configs/system_d_vgg16_bn_stage2.toml
  ferkit two-stage STAGE1.toml STAGE2.toml model.init_from= out_dir=runs/system_d_scratch   # from random weights
  ferkit two-stage STAGE1.toml STAGE2.toml --stage2-override train.epochs=30   # a longer stage 2 only
  ferkit two-stage STAGE1.toml STAGE2.toml --resume    # continue: finished stages and searched rates are read back"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit two-stage``."""
    parser.add_argument("stage1", help="stage 1 config (body frozen)")
    parser.add_argument("stage2", help="stage 2 config (everything trainable)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="applied to both stages (not name=)")
    for stage in (1, 2):
        parser.add_argument(f"--stage{stage}-override", dest=f"stage{stage}_overrides", action="append",
                            default=[], metavar="key=value",
                            help=f"applied to stage {stage} only, after the shared ones (repeatable)")
    parser.add_argument("--lr1", type=float, help="stage 1 rate (default: the LR search's suggestion)")
    parser.add_argument("--lr2", type=float, help="stage 2 head rate (default: the second search's, capped)")
    parser.add_argument("--steps", type=int, default=100, help="mini-batches per LR search")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command")


def recipe_options(args: argparse.Namespace) -> dict:
    """The options of :func:`~ferkit.training.two_stage.run_two_stage` these arguments give (a queue line's too)."""
    return {"lr1": args.lr1, "lr2": args.lr2, "steps": args.steps}


def stage_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Each stage's ``key=value`` overrides: the shared ones, then its own (a queue line's too)."""
    return [*args.overrides, *args.stage1_overrides], [*args.overrides, *args.stage2_overrides]


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config
    from ..training.two_stage import run_two_stage

    overrides1, overrides2 = stage_overrides(args)
    summary = run_two_stage(load_config(args.stage1, overrides1), load_config(args.stage2, overrides2),
                            resume=args.resume, **recipe_options(args))
    print(json.dumps(summary, indent=2))  # noqa: T201
    return 0
