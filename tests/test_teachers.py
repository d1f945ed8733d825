"""Teacher probabilities cached once per checkpoint file, and the ensemble chosen on PublicTest only."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.config import load_config
from ferkit.data.fer2013 import read_fer2013
from ferkit.evaluation.members import member_name
from ferkit.evaluation.predict import predict_proba
from ferkit.evaluation.teachers import (
    cache_member,
    select_ensemble,
    teacher_ensemble,
    weighted_mean,
)
from ferkit.models import create_model, load_model, save_model
from ferkit.training.setup import model_info
from synthetic import write_fer2013_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    csv = write_fer2013_csv(tmp_path_factory.mktemp("d") / "fer.csv", {"Training": 4, "PublicTest": 3,
                                                                        "PrivateTest": 3})
    return read_fer2013(csv)


def _checkpoint(path, seed: int):
    torch.manual_seed(seed)
    config = load_config(None, ["model.name=ferkit_cnn_small", "model.input_size=24"])
    info = model_info(config, tuple(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")))
    return save_model(path, create_model(info.name, **info.args).eval(), info)


def test_the_cache_holds_each_splits_probabilities_and_the_mirrors_and_is_reused(data, tmp_path):
    path = _checkpoint(tmp_path / "a.pt", 0)
    cached = cache_member(path, data, tmp_path / "cache")
    model, info = load_model(path)
    train = data.split("Training").images
    with np.load(cached) as arrays:
        np.testing.assert_allclose(arrays["Training"], predict_proba(model, train, info.preprocessing), atol=1e-6)
        np.testing.assert_allclose(arrays["Training_flip"], predict_proba(model, train[:, :, ::-1].copy(),
                                                                          info.preprocessing), atol=1e-6)
        assert arrays["PrivateTest"].shape == (len(data.split("PrivateTest")), 7)
    stamp = cached.stat().st_mtime_ns
    assert cache_member(path, data, tmp_path / "cache").stat().st_mtime_ns == stamp  # same file: not run again
    _checkpoint(path, 1)  # the checkpoint changes: its probabilities are computed again
    again = cache_member(path, data, tmp_path / "cache")
    assert again.stat().st_mtime_ns != stamp
    with np.load(again) as arrays:
        assert not np.allclose(arrays["Training"], predict_proba(model, train, info.preprocessing), atol=1e-6)


def test_members_are_named_after_what_a_reader_knows_them_by(tmp_path):
    (tmp_path / "xfit" / "default_v2").mkdir(parents=True)
    assert member_name(tmp_path / "checkpoints" / "default_v2.pt") == "default_v2"
    assert member_name(tmp_path / "default_seeds" / "default_v2_s1" / "best.pt") == "default_v2_s1"  # its run
    assert member_name(tmp_path / "system_d" / "stage2" / "system_d_cached-fp16.pt") == "system_d_cached"  # published
    assert member_name(tmp_path / "xfit" / "default_v2") == "default_v2_xfit"  # a folder of fold runs


def test_selection_keeps_the_members_that_help_and_drops_one_that_misleads():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 400)
    good = np.full((400, 7), 0.02)
    good[np.arange(400), labels] = 0.88
    good[:80] = rng.dirichlet(np.ones(7), 80)  # right on 80% of the faces or so
    noise = np.full((400, 7), 0.1 / 6)
    noise[np.arange(400), (labels + 1) % 7] = 0.9  # confidently wrong: any share of it costs accuracy
    weights = select_ensemble({"good": good, "noise": noise}, labels)
    assert set(weights) == {"good"}
    partner = good.copy()
    partner[:80] = np.eye(7)[labels[:80]] * 0.9 + 0.1 / 7  # right where "good" guesses, guessing elsewhere:
    partner[80:160] = rng.dirichlet(np.ones(7), 80)  # each alone ~80%, their mean right nearly everywhere
    assert set(select_ensemble({"good": good, "partner": partner, "noise": noise}, labels)) == {"good", "partner"}
    alone = select_ensemble({"good": good, "partner": partner, "noise": noise}, labels, max_members=1)
    accuracy = {name: np.mean(probs.argmax(1) == labels) for name, probs in (("good", good), ("partner", partner))}
    assert accuracy["good"] != accuracy["partner"]
    assert set(alone) == {max(accuracy, key=accuracy.get)}  # a budget of one network: the better one alone
    mean = weighted_mean({"good": good, "noise": noise}, {"good": 2, "noise": 1})
    np.testing.assert_allclose(mean, (2 * good + noise) / 3)


def test_the_ensemble_record_chooses_on_public_test_and_reports_private_test(data, tmp_path):
    paths = [_checkpoint(tmp_path / f"m{i}.pt", i) for i in range(2)]
    record = teacher_ensemble(paths, data, tmp_path / "cache")
    assert set(record["members"]) == {"m0", "m1"} and set(record["selected"]["weights"]) <= {"m0", "m1"}
    model, info = load_model(paths[0])  # Training: how often the member's (face + mirror) mean is the label
    train = data.split("Training")
    mean = (predict_proba(model, train.images, info.preprocessing)
            + predict_proba(model, np.ascontiguousarray(train.images[:, :, ::-1]), info.preprocessing)) / 2
    assert record["members"]["m0"]["Training"] == pytest.approx(np.mean(mean.argmax(1) == train.labels), abs=1e-6)
    weights = record["selected"]["weights"]
    assert weights and record["temperature"] > 0
    private = {name: np.load(record["cache"][name])["PrivateTest"] for name in weights}  # reported, not chosen on
    assert record["selected"]["PrivateTest"]["accuracy"] == pytest.approx(
        np.mean(weighted_mean(private, weights).argmax(1) == data.split("PrivateTest").labels))
    assert "PrivateTest only reported" in record["chosen_on"]


def test_without_training_only_the_test_splits_are_cached_and_a_student_is_refused_them(data, tmp_path):
    from ferkit.errors import FerkitError
    from ferkit.evaluation.teachers import cached_targets

    paths = [_checkpoint(tmp_path / f"m{i}.pt", i) for i in range(2)]
    record = teacher_ensemble(paths, data, tmp_path / "cache", training=False)
    with np.load(record["cache"]["m0"]) as arrays:
        assert "Training" not in arrays and "Training_flip" not in arrays
        model, info = load_model(paths[0])
        np.testing.assert_allclose(arrays["PublicTest"], predict_proba(model, data.split("PublicTest").images,
                                                                       info.preprocessing), atol=1e-6)
    assert record["training"] is False and "Training" not in record["members"]["m0"]
    assert record["selected"]["weights"] and set(record["selected"]["weights"]) <= {"m0", "m1"}
    with pytest.raises(FerkitError, match="no Training probabilities .*--no-training"):
        cached_targets(record, data.split("Training").images)
    full = teacher_ensemble(paths, data, tmp_path / "cache")  # a full call completes the test-only caches
    assert "Training" in full["members"]["m0"]
    assert cached_targets(full, data.split("Training").images).shape == (len(data.split("Training")), 7)
    stamp = cache_member(paths[0], data, tmp_path / "cache").stat().st_mtime_ns
    assert cache_member(paths[0], data, tmp_path / "cache", training=False).stat().st_mtime_ns == stamp  # reused


@pytest.mark.slow
def test_a_student_distils_from_the_cached_probabilities_of_its_own_batch_rows(data, tmp_path, monkeypatch):
    import json

    from ferkit.errors import FerkitError
    from ferkit.training import tasks as tasks_module
    from ferkit.training.distill import CachedTeacher
    from ferkit.training.run import train

    paths = [_checkpoint(tmp_path / f"t{i}.pt", i) for i in range(2)]
    record = teacher_ensemble(paths, data, tmp_path / "cache")
    record_path = tmp_path / "ensemble.json"
    record_path.write_text(json.dumps(record))
    csv = tmp_path / "student.csv"
    write_fer2013_csv(csv, {"Training": 4, "PublicTest": 3, "PrivateTest": 3})  # the same faces, written again
    common = [f"data.path={csv}", "data.cache_dir=", "model.name=ferkit_cnn_small", "model.input_size=24",
              "train.epochs=1", "train.batch_size=8", "train.bf16=false", "train.channels_last=false",
              f"out_dir={tmp_path / 'runs'}", "train.kd_alpha=1.0", "train.kd_temperature=2.0"]
    seen, seen_labels, real = [], [], tasks_module.distillation_loss

    def spy(logits, y, soft, **kwargs):
        seen.append(soft.detach().clone())
        seen_labels.append((y.argmax(1) if y.ndim == 2 else y).detach().clone())
        return real(logits, y, soft, **kwargs)

    monkeypatch.setattr(tasks_module, "distillation_loss", spy)
    train(load_config(None, ["name=student", f"train.teacher_cache={record_path}", *common]))
    expected = CachedTeacher.from_record(str(record_path), data.split("Training").images, data.label_names,
                                         torch.device("cpu"), 2.0).targets
    rows = torch.cat(seen)
    assert len(rows) == len(expected) // 8 * 8  # every full batch of the epoch got cached targets
    # each is the (softened, flip-averaged) ensemble row of a Training face: its own face's, each face once an epoch
    gaps = (expected[None] - rows[:, None]).abs().amax(dim=2)  # (rows, faces): a random teacher's rows lie close
    assert (gaps.amin(dim=1) <= 1e-6).all()
    faces = gaps.argmin(dim=1).tolist()
    assert len(set(faces)) == len(faces)
    train_labels = data.split("Training").labels
    assert [int(train_labels[face]) for face in faces] == torch.cat(seen_labels).tolist()

    other = tmp_path / "other.csv"
    write_fer2013_csv(other, {"Training": 4, "PublicTest": 3, "PrivateTest": 3}, seed=5)
    with pytest.raises(FerkitError, match="cached on other Training faces"):
        train(load_config(None, ["name=other", f"train.teacher_cache={record_path}",
                                 *[c for c in common if not c.startswith("data.path")], f"data.path={other}"]))
    with pytest.raises(FerkitError, match="teacher_cache record .* not found"):
        CachedTeacher.from_record(str(tmp_path / "none.json"), data.split("Training").images, data.label_names,
                                  torch.device("cpu"))
    with pytest.raises(FerkitError, match="cannot be combined"):
        load_config(None, [f"train.teacher_cache={record_path}", "train.mixup=0.2"])


def test_the_written_record_names_the_command_that_reproduces_it(tmp_path, capsys):
    paths = [str(_checkpoint(tmp_path / f"m{i}.pt", i)) for i in range(2)]
    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 4, "PublicTest": 3, "PrivateTest": 3})
    out = tmp_path / "record.json"
    assert main(["teachers", *paths, "--data", str(csv), "--cache", str(tmp_path / "c"), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["command"] == shlex.join(["ferkit", "teachers", *paths, "--data", str(csv)])
    assert set(record["members"]) == {"m0", "m1"} and "selected" in capsys.readouterr().out
    assert main(["teachers", *paths, "--data", str(csv), "--cache", str(tmp_path / "c2"), "--out", str(out),
                 "--no-training", "--max-members", "1"]) == 0
    record = json.loads(out.read_text())
    assert record["command"].endswith("--no-training --max-members 1") and record["training"] is False
    assert len(record["selected"]["weights"]) == 1
    assert "Training" not in capsys.readouterr().out
    assert main(["teachers", *paths, "--data", str(csv), "--max-members", "0"]) == 2
    assert "--max-members 0: give at least 1" in capsys.readouterr().err
