"""``ferkit models NAME``: a shipped model's card, read from its records."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.inference import SHIPPED_MODELS, model_card
from ferkit.inference.card import EVALUATIONS, LIMITS, shipped_record


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_the_card_shows_the_records_figures(name):
    card, record, int8 = model_card(name), shipped_record(name), shipped_record(name, int8=True)
    for label, source in (("float", record), ("int8 ", int8)):
        for key in EVALUATIONS:
            if key not in source:
                assert key == "ckplus48_end_to_end"  # the one evaluation a record may lack
                continue
            plain = source[key]["plain"]
            low, high = plain["accuracy_ci95"]
            assert f"  {label}  plain {plain['accuracy']:.2%} ({low:.2%}-{high:.2%})" in card
            if "end_to_end_accuracy" in plain:
                assert f"end to end {plain['end_to_end_accuracy']:.2%}" in card
    assert ("By the condition of the faces" in card) == ("slices" in record["privatetest"])
    for row in record["privatetest"].get("slices", []):
        assert f"{row['accuracy']:.1%} ({row['expected']:.1%})" in " ".join(card.split())
    assert ("temperature (ferkit calibrate)" in card) == ("temperature" in record)
    assert ("per-class logit offsets" in card) == ("class_bias" in record)
    assert record["ship_command"] in card and "Limits:" in card and len(card.splitlines()) > 20
    weights = importlib.resources.files("ferkit") / "weights"
    sizes = [(weights / f).stat().st_size / 2**20 for f in (f"{name}.pt", f"{name}-int8.onnx")]
    assert f"files:    {sizes[0]:.2f} MB (fp16), int8 copy {sizes[1]:.2f} MB" in card


def test_a_record_without_tuning_ece_or_tta_still_makes_a_card(monkeypatch):
    block = {"faces": 10, "plain": {"accuracy": 0.5, "accuracy_ci95": [0.2, 0.8], "macro_f1": 0.4,
                                    "lowest_recall": {"fear": 0.1}}}
    record = {"version": "v0", "model": "ferkit_cnn", "parameters": 1000, "weights": "fp16", "train_command": "t",
              "ship_command": "s", "evaluate_command": "e",
              **dict.fromkeys(("privatetest", "publictest", "ckplus48_zero_shot"), block)}
    monkeypatch.setattr("ferkit.inference.card.shipped_record", lambda name, int8=False: record)
    card = model_card("fast")
    assert "plain 50.00% (20.00%-80.00%), macro-F1 0.400, lowest recall fear 0.10\n" in card
    assert "Tuned after training (on PublicTest):\n  nothing" in card and "ECE" not in card.split("Limits:")[0]
    assert "By the condition of the faces" not in card
    assert all(" ".join(limit.split()) in " ".join(card.split()) for limit in LIMITS)  # each limit, whole


def test_ferkit_models_name_prints_the_card_and_json_the_records(capsys):
    assert main(["models", "fast"]) == 0
    assert capsys.readouterr().out.strip() == model_card("fast")
    assert main(["models", "accurate", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"float": shipped_record("accurate"), "int8": shipped_record("accurate", int8=True)}


def test_unknown_names_and_json_without_a_name_are_refused(capsys):
    assert main(["models", "fastest"]) == 2
    assert "unknown shipped model 'fastest'; shipped: default, fast, accurate" in capsys.readouterr().err
    assert main(["models", "--json"]) == 2
    assert "--json needs a model name" in capsys.readouterr().err
    with pytest.raises(FerkitError, match="unknown shipped model"):
        model_card("runs/x/best.pt")


@pytest.mark.parametrize("int8", [False, True])
def test_trust_notes_give_the_scores_the_float_files_quarters_and_the_limits(int8):
    from ferkit.inference.card import trust_notes

    notes, record = trust_notes("default", int8=int8), shipped_record("default", int8=int8)
    assert notes[-len(LIMITS):] == list(LIMITS)
    assert notes[0].startswith("FER2013 PrivateTest")
    assert f"{record['privatetest']['plain']['accuracy']:.2%}" in notes[0]
    turn = [row["accuracy"] for row in shipped_record("default")["privatetest"]["slices"]
            if row["measure"] == "turn" and row["low"] is not None]
    (condition,) = [note for note in notes if note.startswith("By the condition of the faces")]
    assert f"{turn[0]:.1%} in its lowest quarter, {turn[-1]:.1%} in its highest" in condition
