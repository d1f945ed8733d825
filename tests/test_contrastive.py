"""Contrastive pre-training: the NT-Xent loss against a per-view loop, the bodies' names against their
classifiers', and a run that learns to pair views and seeds a classifier."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ferkit.config import load_config
from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.models import create_model, model_task
from ferkit.training.contrastive import nt_xent, train_contrastive_epoch
from ferkit.training.loop import EpochOptions
from ferkit.training.publish import publish_run
from ferkit.training.run import train
from ferkit.training.setup import init_weights
from synthetic import write_fer2013_csv

pytestmark = pytest.mark.usefixtures("one_thread")


def _loop_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written view by view: -log(exp(s(i, partner)) / sum over the other 2B - 1 views)."""
    z = torch.cat([z1, z2]).double()
    n, total = len(z1), 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        logits = torch.stack([z[i] @ z[j] / temperature for j in others])
        total -= (z[i] @ z[partner] / temperature - torch.logsumexp(logits, 0)).item()
    return total / (2 * n)


def test_nt_xent_matches_the_per_view_definition():
    g = torch.Generator().manual_seed(0)
    z1 = F.normalize(torch.randn(6, 5, generator=g), dim=1)
    z2 = F.normalize(z1 + 0.3 * torch.randn(6, 5, generator=g), dim=1)
    for temperature in (0.1, 0.5, 1.0):
        loss, _ = nt_xent(z1, z2, temperature)
        assert loss.item() == pytest.approx(_loop_nt_xent(z1, z2, temperature), rel=1e-5)


def test_nt_xent_counts_views_that_find_their_partner():
    basis = torch.eye(4)
    loss, hits = nt_xent(basis, basis, 0.1)  # each view identical to its partner, orthogonal to the rest
    assert int(hits) == 8 and loss.item() < 0.01
    swapped = basis[[1, 0, 3, 2]]  # partners now point at another face: no view finds its own
    loss_wrong, hits_wrong = nt_xent(basis, swapped, 0.1)
    assert int(hits_wrong) == 0 and loss_wrong.item() > 5
    random = F.normalize(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    assert loss.item() < nt_xent(random, F.normalize(torch.randn(4, 4), dim=1), 0.1)[0].item()
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(basis, basis[:3], 0.1)


@pytest.mark.parametrize(("contrastive", "classifier", "args"), [
    ("ferkit_cnn_simclr", "ferkit_cnn", {"widths": [16, 32, 64, 128]}),
    ("vgg16_bn_simclr", "vgg16_bn_fer", {}),
    ("resnet34_simclr", "resnet34", {}),
])
def test_contrastive_bodies_carry_their_classifiers_names(contrastive, classifier, args):
    body = create_model(contrastive, in_channels=1, **args)
    assert model_task(contrastive) == "contrast" and model_task(classifier) == "classify"
    target = create_model(classifier, in_channels=1, **({"widths": args["widths"], "hidden": 128} if args else {}))
    own, theirs = body.state_dict(), target.state_dict()
    body_keys = {k for k in own if not k.startswith("projector.")}
    assert body_keys and body_keys <= set(theirs)
    assert all(own[k].shape == theirs[k].shape for k in body_keys)
    assert not any(k.startswith("projector.") for k in theirs)


def test_embeddings_are_unit_length_and_views_are_required():
    model = create_model("ferkit_cnn_simclr", widths=[8, 16])
    z = model.eval()(torch.rand(3, 1, 24, 24))
    assert z.shape == (3, 128) and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    options = EpochOptions(Preprocessing(size=24), batch_size=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="augmentation"):
        train_contrastive_epoch(model, torch.zeros(4, 24, 24, dtype=torch.uint8), options, optimizer=opt,
                                generator=torch.Generator(), temperature=0.2)


@pytest.fixture(scope="module")
def fer_csv(tmp_path_factory):
    return write_fer2013_csv(tmp_path_factory.mktemp("data") / "fer2013.csv", {"Training": 12, "PublicTest": 6,
                                                                                "PrivateTest": 6})


def _config(root, csv_path, *extra: str):
    return load_config(None, [
        "name=simclr", f"out_dir={root}", f"data.path={csv_path}", "model.name=ferkit_cnn_simclr",
        "model.input_size=24", "train.task=contrast", "train.monitor=val_loss", "train.mode=min", "train.epochs=4",
        "train.batch_size=16", "train.lr=0.003", "train.bf16=false", "train.scheduler=none",
        "augment.shift=0.1", "augment.zoom=0.1", "augment.flip=0.5", "augment.brightness=0.1", *extra,
    ])


def test_contrast_task_needs_views_and_a_loss_to_watch(tmp_path, fer_csv):
    no_views = load_config(None, ["model.name=ferkit_cnn_simclr", "train.task=contrast", "train.monitor=val_loss",
                                  "train.mode=min", f"data.path={fer_csv}", f"out_dir={tmp_path}"])
    with pytest.raises(FerkitError, match=r"\[augment\]"):
        train(no_views)
    with pytest.raises(FerkitError, match="val_loss"):
        train(_config(tmp_path, fer_csv, "train.monitor=val_acc", "train.mode=max"))
    with pytest.raises(FerkitError, match="contrast_temperature"):
        train(_config(tmp_path, fer_csv, "train.contrast_temperature=0"))


@pytest.mark.slow
def test_contrast_run_learns_to_pair_views_and_seeds_a_classifier(tmp_path, fer_csv):
    config = _config(tmp_path / "runs", fer_csv)
    result = train(config)
    rows = result.history
    chance = math.log(2 * 16 - 1)  # NT-Xent of embeddings that know nothing, batch 16
    assert len(rows) == 4 and rows[-1]["train_loss"] < rows[0]["train_loss"] < chance + 0.5
    assert min(r["val_loss"] for r in rows) < chance and 0 <= rows[-1]["val_acc"] <= 1
    assert result.test_metrics["test_loss"] < chance and "test_acc" in result.test_metrics
    classifier = create_model("ferkit_cnn", input_size=24)
    body = {k for k in classifier.state_dict() if k.startswith("features.")}
    assert init_weights(classifier, str(result.best_checkpoint)) == len(body)
    record = publish_run(config.run_dir, "ferkit train ...", name="simclr_body", repo=tmp_path)
    assert record["weights"] == "fp32" and record["test_loss"] == result.test_metrics["test_loss"]
    assert json.loads((tmp_path / "checkpoints" / "simclr_body.json").read_text())["model"] == "ferkit_cnn_simclr"
