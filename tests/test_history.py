"""Per-epoch history: the papers' table."""

from __future__ import annotations

from ferkit.training.history import epoch_table, progress, read_history_csv, write_epoch_table, write_history_csv


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


def test_progress_counts_epochs_and_prices_the_rest_at_the_median_of_the_recent_ones(tmp_path):
    seconds = [900.0, 340.0, 350.0, 330.0, 2000.0, 345.0]  # a slow start and one disturbed epoch
    write_history_csv([{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)], tmp_path / "history.csv")
    history = read_history_csv(tmp_path / "history.csv")
    assert progress(history, 50) == "6/50 epochs, about 4 h 13 min left at 345 s an epoch"  # 44 x 345 s
    assert progress(history[:2], 3) == "2/3 epochs, about 10 min left at 620 s an epoch"  # median of 900 and 340
    assert progress(history, 6) == "6/6 epochs" and progress([], 8) == "0/8 epochs"
