"""The run store and ``ferkit queue``: runs outside the work tree, trained in order, skipped when done or
published, resumed when cut off (even by SIGKILL, to the same weights), one trainer at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ferkit.errors import FerkitError
from ferkit.training.history import write_history_csv
from ferkit.training.queue import entry_progress, listed_status, read_queue, run_queue, trainer_lock
from ferkit.training.store import as_runs_path, existing_run_file, in_store, run_store
from synthetic import write_fer2013_csv

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "default.toml"
TINY = ("model.name=ferkit_cnn_small model.input_size=24 train.batch_size=16 train.bf16=false "
        "train.channels_last=false augment.rotation=0 data.cache_dir= train.threads=1")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FERKIT_RUNS_DIR", str(tmp_path / "store"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "store"


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    return write_fer2013_csv(folder / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})


def test_runs_paths_name_the_store_and_other_paths_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_RUNS_DIR", str(tmp_path / "s"))
    assert run_store() == tmp_path / "s"
    assert in_store("runs/system_c/x/best.pt") == tmp_path / "s" / "system_c" / "x" / "best.pt"
    assert in_store("checkpoints/a.pt") == Path("checkpoints/a.pt") and in_store("/abs/runs/a") == Path("/abs/runs/a")
    assert as_runs_path(tmp_path / "s" / "system_c" / "x" / "best.pt") == "runs/system_c/x/best.pt"  # written down
    assert as_runs_path(tmp_path / "elsewhere.pt") == str(tmp_path / "elsewhere.pt")
    monkeypatch.delenv("FERKIT_RUNS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert run_store() == tmp_path / "data" / "ferkit" / "runs"  # outside any work tree by default
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "best.pt").write_bytes(b"x")
    assert existing_run_file("runs/old/best.pt") == Path("runs/old/best.pt")  # a run made before the store
    assert existing_run_file("runs/new/best.pt") == tmp_path / "data" / "ferkit" / "runs" / "new" / "best.pt"


def test_runs_sharing_a_folder_name_count_as_published_under_their_path_below_runs(store, tmp_path):
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/xfit/t/f0 {CONFIG}\nruns/xfit/t/f1 {CONFIG}\nruns/other/f0 {CONFIG}\n")
    published = tmp_path / "published"
    (published / "xfit" / "t").mkdir(parents=True)
    (published / "xfit" / "t" / "f0.json").write_text("{}")  # a fold of a cross-fitted teacher, published
    assert [listed_status(e, published) for e in read_queue([queue])] == ["published", "new", "new"]
    (published / "f0.json").write_text("{}")  # a flat name still counts for every run of that folder name
    assert [listed_status(e, published) for e in read_queue([queue])] == ["published", "new", "published"]


def test_a_run_published_under_another_name_is_known_by_the_run_its_metrics_file_names(store, tmp_path):
    import json

    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/d/stage2 two-stage {CONFIG} {CONFIG}\nruns/e/stage2 two-stage {CONFIG} {CONFIG}\n"
                     f"runs/c/x {CONFIG}\nruns/c/y {CONFIG}\n")
    published = tmp_path / "published"
    published.mkdir()
    (published / "system_x.json").write_text(json.dumps({"run": "runs/c/x", "test_acc": 0.5}))
    # written before the run was recorded: the weights kept beside the run name its folder
    (published / "system_d.json").write_text(json.dumps({"weights_path": "runs/d/stage2/system_d-fp16.pt"}))
    (published / "broken.json").write_text("{not json")
    (published / "list.json").write_text("[1, 2]")
    assert [listed_status(e, published) for e in read_queue([queue])] == ["published", "two-stage", "published",
                                                                          "new"]


def test_a_line_reading_weights_no_line_will_train_is_refused_before_anything_runs(store, tmp_path, capsys):
    from ferkit.cli import main

    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/p/body {CONFIG}\n"  # published, its weights gone with an old store
                     f"runs/p/fresh {CONFIG}\n"  # will train: a later line may start from it
                     f"runs/s/a {CONFIG} model.init_from=runs/p/fresh/best.pt\n"
                     f"runs/s/b {CONFIG} model.init_from=runs/kept/best.pt\n"  # in the store
                     f"runs/d/stage2 two-stage {CONFIG} {CONFIG} model.init_from=runs/p/body/best.pt\n"
                     f"runs/s/c {CONFIG} train.teacher_cache=runs/teachers/gone.json\n")
    (store / "kept").mkdir(parents=True)
    (store / "kept" / "best.pt").write_bytes(b"weights")
    published = tmp_path / "work" / "checkpoints"
    published.mkdir()
    (published / "body.json").write_text("{}")
    with pytest.raises(FerkitError) as refused:
        run_queue([queue])
    message = str(refused.value)
    assert "runs/d/stage2 reads runs/p/body/best.pt" in message and "runs/p/body is skipped as published" in message
    assert "runs/s/c reads runs/teachers/gone.json" in message
    assert "fresh" not in message and "kept" not in message
    assert not (store / "p").exists()  # nothing trained

    assert main(["queue", str(queue), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["published", "new", "new", "new", "two-stage", "new",
                                                        "missing", "missing"]
    (store / "teachers").mkdir()
    (store / "teachers" / "gone.json").write_text("{}")  # restored: only the published run's weights are missing
    (published / "body.json").unlink()  # no longer published: the first line trains it
    assert main(["queue", str(queue), "--list"]) == 0
    assert "missing" not in capsys.readouterr().out


@pytest.mark.slow
def test_queue_trains_in_order_in_the_store_skips_done_and_published_and_resumes(store, csv, tmp_path, caplog):
    caplog.set_level("INFO", logger="ferkit")
    queue = tmp_path / "queue.txt"
    queue.write_text("# a comment, then three runs\n\n"
                     f"runs/a/first {CONFIG} data.path={csv} train.epochs=1 {TINY}\n"
                     f"runs/a/second {CONFIG} data.path={csv} train.epochs=2 {TINY}  # two epochs\n"
                     f"runs/a/third {CONFIG} data.path={csv} train.epochs=1 {TINY}\n")
    (tmp_path / "work" / "checkpoints").mkdir()
    (tmp_path / "work" / "checkpoints" / "third.json").write_text("{}")  # published in an earlier session
    assert run_queue([queue]) == [("runs/a/first", "finished"), ("runs/a/second", "finished"),
                                  ("runs/a/third", "published")]
    first, second = store / "a" / "first", store / "a" / "second"
    assert (first / "metrics.json").is_file() and (second / "best.pt").is_file()
    assert not (tmp_path / "work" / "runs").exists() and not (store / "a" / "third").exists()
    assert len(torch.load(second / "last.pt", weights_only=True)["history"]) == 2
    assert caplog.text.index("train runs/a/first") < caplog.text.index("train runs/a/second")

    stamp = (first / "best.pt").stat().st_mtime_ns
    (second / "metrics.json").unlink()  # as if killed before it finished
    assert run_queue([queue])[:2] == [("runs/a/first", "done"), ("runs/a/second", "finished")]
    assert (first / "best.pt").stat().st_mtime_ns == stamp
    assert "train runs/a/second --resume" in caplog.text


@pytest.mark.slow
def test_a_time_budget_pauses_at_an_epoch_boundary_and_the_next_call_resumes(store, csv, tmp_path):
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/b/cut {CONFIG} data.path={csv} train.epochs=3 {TINY}\n"
                     f"runs/b/later {CONFIG} data.path={csv} train.epochs=1 {TINY}\n")
    assert run_queue([queue], time_limit_s=0.01) == [("runs/b/cut", "paused")]  # stops; "later" waits
    assert len(torch.load(store / "b" / "cut" / "last.pt", weights_only=True)["history"]) == 1
    assert run_queue([queue]) == [("runs/b/cut", "finished"), ("runs/b/later", "finished")]


def test_script_lines_run_with_resume_and_bad_lines_are_refused_before_anything_runs(store, tmp_path, capfd):
    script = tmp_path / "echo_args.py"
    script.write_text("import sys\nprint('ARGS', ' '.join(sys.argv[1:]))\n")
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/d/stage2 {script} one.toml out_dir=runs/d\n")
    assert run_queue([queue]) == [("runs/d/stage2", "ok")]
    assert "ARGS one.toml out_dir=runs/d --resume" in capfd.readouterr().out
    bad = tmp_path / "bad.txt"
    bad.write_text(f"runs/x/a {CONFIG}\nonly-one-word\n")
    with pytest.raises(FerkitError, match=r"bad.txt:2: expected 'OUT_DIR/NAME CONFIG"):
        read_queue([queue, bad])
    with pytest.raises(FerkitError, match="queue file not found"):
        read_queue([tmp_path / "missing.txt"])


@pytest.mark.slow
def test_a_second_queue_is_refused_while_one_trains(store, csv, tmp_path):
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/l/one {CONFIG} data.path={csv} train.epochs=1 {TINY}\n")
    with trainer_lock(store):  # held as a running queue holds it
        with pytest.raises(FerkitError, match="another training queue"):
            run_queue([queue])
        other = subprocess.run([sys.executable, "-m", "ferkit.cli", "queue", str(queue)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
        assert other.returncode == 2 and "another training queue" in other.stderr
    assert not (store / "l").exists()
    assert run_queue([queue]) == [("runs/l/one", "finished")]  # free again


def test_queues_pinned_to_different_cores_run_side_by_side_but_not_on_one_core(tmp_path):
    with trainer_lock(tmp_path, cores=[1]) as held:
        assert [p.name for p in held] == [".trainer-core1.lock"]
        with trainer_lock(tmp_path, cores=[0]):  # another core: allowed
            pass
        with pytest.raises(FerkitError, match="trainer-core1.lock"), trainer_lock(tmp_path, cores=[0, 1]):
            pass  # an unpinned queue would share core 1
        with trainer_lock(tmp_path, cores=[0]):  # the refused call let go of core 0's lock again
            pass
    with trainer_lock(tmp_path, cores=[0, 1]):  # core 1 free once the block ends
        pass


def test_a_run_another_queue_trains_is_skipped_as_busy(store, csv, tmp_path):
    import fcntl

    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/l/one {CONFIG} data.path={csv} train.epochs=1 {TINY}\n")
    (store / "l").mkdir(parents=True)
    with open(store / "l" / ".one.queue.lock", "a") as held:  # a queue on the other core is training this run
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run_queue([queue]) == [("runs/l/one", "busy")]
    assert not (store / "l" / "one").exists()
    entry = read_queue([queue])[0]
    assert listed_status(entry, tmp_path / "published") == "new"  # free again: listed by its files
    with open(store / "l" / ".one.queue.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert listed_status(entry, tmp_path / "published") == "training"


def _queue_process(queue: Path, store: Path) -> subprocess.Popen:
    env = {**os.environ, "FERKIT_RUNS_DIR": str(store), "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ferkit.cli", "queue", str(queue)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_as_an_uninterrupted_one(csv, tmp_path):
    big = write_fer2013_csv(tmp_path / "big.csv", {"Training": 60, "PublicTest": 3, "PrivateTest": 3})
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/k/run {CONFIG} data.path={big} train.epochs=3 {TINY}\n")
    whole = _queue_process(queue, tmp_path / "whole")
    assert whole.wait(300) == 0, whole.stderr.read()
    killed = _queue_process(queue, tmp_path / "killed")
    last = tmp_path / "killed" / "k" / "run" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline:  # epoch 1 is saved; epoch 2 is under way
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(60)
    assert not (last.parent / "metrics.json").exists()
    again = _queue_process(queue, tmp_path / "killed")
    assert again.wait(300) == 0, again.stderr.read()
    want = torch.load(tmp_path / "whole" / "k" / "run" / "last.pt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert [row["train_loss"] for row in got["history"]] == [row["train_loss"] for row in want["history"]]
    for key, tensor in want["model_checkpoint"]["state_dict"].items():
        assert torch.equal(got["model_checkpoint"]["state_dict"][key], tensor), key


def _store_stage1_body(store: Path) -> None:
    """The autoencoder body System D's stage-1 config starts from, as a queue would find it in the store."""
    (store / "pretrain" / "vgg16_bn_ae_fer2013").mkdir(parents=True)
    (store / "pretrain" / "vgg16_bn_ae_fer2013" / "best.pt").write_bytes(b"weights")


def test_two_stage_lines_run_the_recipe_resumably_and_count_as_done_once_summarised(store, tmp_path, monkeypatch):
    from ferkit.training import two_stage
    from ferkit.training.run import RunPaused

    calls = []

    def recipe(stage1, stage2, *, resume, **kwargs):  # the recipe itself is tested in test_param_groups
        calls.append((stage1.name, stage2.name, stage2.run_dir, stage2.train.epochs, resume))
        if len(calls) == 1:
            raise RunPaused(f"{stage1.name} stopped before its end (time limit): run the same command again")
        stage2.run_dir.mkdir(parents=True)
        (stage2.run_dir / "two_stage.json").write_text("{}")

    monkeypatch.setattr(two_stage, "run_two_stage", recipe)
    queue = tmp_path / "q.txt"
    stages = f"{ROOT}/configs/system_d_vgg16_bn_stage1.toml {ROOT}/configs/system_d_vgg16_bn_stage2.toml"
    queue.write_text(f"runs/system_d/system_d_vgg16_bn_stage2 two-stage {stages} train.epochs=1\n")
    _store_stage1_body(store)
    assert run_queue([queue]) == [("runs/system_d/system_d_vgg16_bn_stage2", "paused")]
    assert run_queue([queue]) == [("runs/system_d/system_d_vgg16_bn_stage2", "finished")]
    assert run_queue([queue]) == [("runs/system_d/system_d_vgg16_bn_stage2", "done")]
    assert calls[1] == ("system_d_vgg16_bn_stage1", "system_d_vgg16_bn_stage2",
                        store / "system_d" / "system_d_vgg16_bn_stage2", 1, True)


def test_listing_shows_each_runs_epochs_and_time_left_stage_by_stage(store, tmp_path):
    stages = f"{ROOT}/configs/system_d_vgg16_bn_stage1.toml {ROOT}/configs/system_d_vgg16_bn_stage2.toml"
    queue = tmp_path / "q.txt"
    queue.write_text(f"runs/p/plain {CONFIG} train.epochs=10\n"
                     f"runs/p/fresh {CONFIG}\n"
                     f"runs/d/system_d_vgg16_bn_stage2 two-stage {stages} out_dir=runs/d "
                     "--stage2-override=train.epochs=50\n")
    plain, fresh, two_stage = read_queue([queue])
    (store / "p" / "plain").mkdir(parents=True)
    write_history_csv([{"epoch": 1, "seconds": 60.0}, {"epoch": 2, "seconds": 62.0}],
                      store / "p" / "plain" / "history.csv")
    assert entry_progress(plain) == "2/10 epochs, about 8 min left at 61 s an epoch"
    assert entry_progress(fresh) == ""
    for stage, epochs, seconds in ((1, 5, 30.0), (2, 1, 330.0)):  # both stages' folders: the line's out_dir
        (store / "d" / f"system_d_vgg16_bn_stage{stage}").mkdir(parents=True)
        write_history_csv([{"epoch": e, "seconds": seconds} for e in range(1, epochs + 1)],
                          store / "d" / f"system_d_vgg16_bn_stage{stage}" / "history.csv")
    assert entry_progress(two_stage) == ("stage 1: 5/5 epochs; "
                                         "stage 2: 1/50 epochs, about 4 h 30 min left at 330 s an epoch")


def test_two_stage_lines_pass_the_recipes_options_and_refuse_unknown_ones(store, tmp_path, monkeypatch):
    from ferkit.training import two_stage

    calls = []

    def recipe(stage1, stage2, *, resume, **options):
        calls.append((stage1.train.epochs, stage2.train.epochs, options))
        stage2.run_dir.mkdir(parents=True)
        (stage2.run_dir / "two_stage.json").write_text("{}")

    monkeypatch.setattr(two_stage, "run_two_stage", recipe)
    stages = f"{ROOT}/configs/system_d_vgg16_bn_stage1.toml {ROOT}/configs/system_d_vgg16_bn_stage2.toml"
    queue = tmp_path / "q.txt"
    _store_stage1_body(store)
    queue.write_text(f"runs/a/s2 two-stage {stages} --lr2=5.72e-5 train.epochs=2 --steps=20\n"
                     f"runs/b/s2 two-stage {stages} --lr3=1e-3\n"
                     f"runs/c/s2 two-stage {stages} --steps=many\n"
                     f"runs/d/s2 two-stage {stages} --stage2-override train.epochs=5 train.epochs=2 out_dir=runs/d\n")
    assert run_queue([queue]) == [("runs/a/s2", "finished"), ("runs/b/s2", "failed"), ("runs/c/s2", "failed"),
                                  ("runs/d/s2", "finished")]
    rates = {"lr1": None, "lr2": None, "steps": 100}
    assert calls == [(2, 2, {**rates, "lr2": 5.72e-5, "steps": 20}), (2, 5, rates)]


@pytest.mark.slow
def test_resume_training_refuses_while_a_queue_trains_and_runs_one_in_the_background(csv, tmp_path):
    import fcntl
    import shutil as sh

    if sh.which("git") is None or sh.which("flock") is None:
        pytest.skip("needs git and flock")
    repo, store = tmp_path / "repo", tmp_path / "store"
    sh.copytree(ROOT / "src" / "ferkit", repo / "src" / "ferkit", ignore=sh.ignore_patterns("__pycache__"))
    sh.copytree(ROOT / "scripts", repo / "scripts", ignore=sh.ignore_patterns("__pycache__"))
    (repo / "queue.txt").write_text(f"runs/r/tiny {CONFIG} data.path={csv} train.epochs=1 {TINY}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fixture"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    env = {**os.environ, "FERKIT_RUNS_DIR": str(store), "FERKIT_CORE": "all", "PYTHONPATH": str(ROOT / "src"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = ["bash", str(repo / "scripts" / "resume_training.sh"), "queue.txt"]
    store.mkdir()
    with open(store / f".trainer-core{min(os.sched_getaffinity(0))}.lock", "a") as held:  # a queue is training
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = subprocess.run(script, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "already running" in refused.stderr
    started = subprocess.run(script, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0 and "training queue started" in started.stdout, started.stderr
    assert list(tmp_path.glob("train-snapshot-*/src/ferkit"))  # the source it trains from is frozen
    deadline = time.monotonic() + 300
    while not (store / "r" / "tiny" / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    log = (store / "queue.log").read_text()
    assert (store / "r" / "tiny" / "metrics.json").exists() and "train runs/r/tiny" in log, log[-2000:]


@pytest.mark.parametrize("queue", sorted((ROOT / "scripts" / "queues").glob("*.txt")), ids=lambda p: p.name)
def test_every_committed_queue_line_reads_as_the_queue_would_run_it(queue, monkeypatch):
    """Configs exist and take their overrides, two-stage lines parse: a typo fails here, not hours into a queue."""
    from ferkit.training.queue import entry_config, two_stage_configs

    monkeypatch.chdir(ROOT)
    entries = read_queue([queue])
    assert entries, f"{queue.name} lists no runs"
    for entry in entries:
        assert entry.run.startswith("runs/"), entry.run
        if entry.is_script:
            assert (ROOT / entry.target).is_file(), entry.target
        elif entry.is_two_stage:
            two_stage_configs(entry)  # raises on a missing config, an unknown key or a bad option
        else:
            assert entry_config(entry).name == entry.name
