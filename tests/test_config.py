"""Config loading: defaults < file < overrides, strict keys and types, TOML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.config import Config, config_from_dict, load_config, to_toml
from ferkit.errors import FerkitError

FILE = """
name = "from_file"

[model]
name = "ferkit_cnn_small"
input_size = 40

[model.args]
dropout = 0.2

[train]
lr = 0.01
epochs = 5
bf16 = false
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(FILE)
    return path


def test_defaults_without_file():
    config = load_config()
    assert config == Config()
    assert config.train.lr == 1e-3 and config.model.name == "ferkit_cnn"


def test_file_overrides_defaults_and_overrides_win(config_file):
    config = load_config(config_file, ["train.lr=0.5", "model.args.dropout=0.1", "data.path=faces.csv"])
    assert config.name == "from_file"
    assert config.model.name == "ferkit_cnn_small" and config.model.input_size == 40  # file
    assert config.train.epochs == 5 and config.train.bf16 is False  # file
    assert config.train.lr == 0.5  # override beats file
    assert config.model.args == {"dropout": 0.1}
    assert config.data.path == "faces.csv"  # unquoted strings are read as strings
    assert config.train.batch_size == 64  # untouched default


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my_run.toml"
    path.write_text("[train]\nepochs = 2\n")
    assert load_config(path).name == "my_run"


def test_int_is_accepted_for_float():
    config = load_config(None, ["train.lr=1"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)


@pytest.mark.parametrize(("override", "names"), [
    ("train.lrr=0.1", ["train.lr", "train.epochs", "train.seed"]),
    ("nam=x", ["name", "out_dir", "train", "model"]),
    ("modle.name=x", ["model", "data", "augment"]),
])
def test_unknown_key_lists_valid_keys(override, names):
    with pytest.raises(FerkitError, match="unknown key") as info:
        load_config(None, [override])
    for name in names:
        assert name in str(info.value)


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(FerkitError, match="bad.toml.*learning_rate.*valid keys: .*train.lr"):
        load_config(path)


@pytest.mark.parametrize("override", ["train.epochs=many", "train.epochs=1.5", "train.bf16=1", "train.lr=true",
                                      "model.name=3"])
def test_wrong_type_is_an_error(override):
    with pytest.raises(FerkitError, match="must be"):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["train", "train.lr", "=3", "train=3", "train.lr.x=1"])
def test_malformed_overrides(override):
    with pytest.raises(FerkitError):
        load_config(None, [override])


def test_to_toml_round_trips(config_file, tmp_path):
    config = load_config(config_file, ["augment.flip=0.0", "data.path=a \"quoted\" path"])
    again = config_from_dict(config.to_dict())
    assert again == config
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = ")
    with pytest.raises(FerkitError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(FerkitError, match="not found"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(("override", "valid"), [
    ("train.optimizer=adamm", "adam, adamw, sgd"), ("train.scheduler=step", "none, plateau, onecycle, cosine"),
    ("train.task=segment", "classify, reconstruct"), ("train.mode=maximum", "min, max"),
    ("data.format=csv", "fer2013, ferplus, folder, kdef"),
])
def test_an_enumerated_setting_is_checked_on_load_naming_the_valid_values(override, valid, tmp_path):
    from ferkit.cli import main

    with pytest.raises(FerkitError, match=f"is not one of: {valid}"):
        load_config(None, [override])
    # the command line refuses it before any data is read: the data path does not even exist
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.toml"
    assert main(["train", str(smoke), override, f"data.path={tmp_path / 'absent.csv'}"]) == 2
