"""Per-epoch history: the papers' table."""

from __future__ import annotations

from ferkit.training.history import epoch_table, write_epoch_table, write_history_csv


def test_epoch_table_gives_error_rate_accuracy_and_minutes():
    history = [{"epoch": 1, "train_loss": 1.5, "val_loss": 1.25, "val_acc": 0.6, "seconds": 65.4},
               {"epoch": 2, "train_loss": 1.0, "val_loss": 1.125, "val_acc": 0.625, "seconds": 599.6}]
    lines = epoch_table(history).splitlines()
    assert lines[0] == "| epoch | train_loss | valid_loss | error_rate | accuracy | time |"
    assert lines[2] == "| 1 | 1.5000 | 1.2500 | 0.4000 | 0.6000 | 1:05 |"
    assert lines[3] == "| 2 | 1.0000 | 1.1250 | 0.3750 | 0.6250 | 10:00 |"


def test_a_reconstruction_history_has_no_accuracy_columns_and_the_csv_round_trips(tmp_path):
    history = [{"epoch": 1, "train_loss": 0.02, "val_loss": 0.0185, "seconds": 480.0}]
    write_history_csv(history, tmp_path / "history.csv")
    text = write_epoch_table(tmp_path / "history.csv", "ae", tmp_path / "ae.md").read_text()
    assert text.startswith("# ae: per epoch")
    assert "| epoch | train_loss | valid_loss | time |" in text and "| 1 | 0.0200 | 0.0185 | 8:00 |" in text
