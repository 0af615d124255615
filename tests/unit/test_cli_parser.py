"""The CLI's options come from the configs' fields: one source for help, choices, defaults."""

import argparse
import dataclasses

import pytest

from mnistlab.cli import build_parser
from mnistlab.config import (
    PRESETS,
    EnsembleConfig,
    ExportConfig,
    PredictConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
)
from mnistlab.options import as_flags, config_values

COMMANDS = {
    "train": TrainConfig,
    "tune": TuneConfig,
    "predict": PredictConfig,
    "serve": ServeConfig,
    "ensemble": EnsembleConfig,
    "export": ExportConfig,
}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_every_option_has_help_and_shows_its_default_once(command):
    text = subparsers()[command].format_help()
    for action in subparsers()[command]._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        assert action.help.count("(default") <= 1, action.help
        assert "(default: None)" not in action.help
    assert "(default: None)" not in text


@pytest.mark.parametrize(("command", "cls"), COMMANDS.items())
def test_each_command_line_field_of_a_config_is_an_argument(command, cls):
    dests = {a.dest for a in subparsers()[command]._actions}
    for field in dataclasses.fields(cls):
        assert (field.name in dests) == field.metadata["cli"], field.name


def test_train_keeps_the_presets_values_for_options_left_out():
    args = build_parser().parse_args(["train", "--preset", "cnn"])
    assert config_values(TrainConfig, args) == {"preset": "cnn"}
    args = build_parser().parse_args(["train", "--epochs", "3", "--h5", "--augment"])
    assert config_values(TrainConfig, args) == {"epochs": 3, "save_h5": True, "augment": True}
    help_text = subparsers()["train"].format_help()
    assert f"(default: {PRESETS['deep-mlp'].epochs})" in help_text


def test_defaults_on_the_command_line_are_the_configs_defaults():
    args = build_parser().parse_args(["serve", "runs/r"])
    assert ServeConfig(**config_values(ServeConfig, args)) == ServeConfig(run="runs/r")
    args = build_parser().parse_args(["tune"])
    assert TuneConfig(**config_values(TuneConfig, args)) == TuneConfig()
    args = build_parser().parse_args(["ensemble", "a", "b", "--out", "e"])
    assert EnsembleConfig(**config_values(EnsembleConfig, args)) == EnsembleConfig(("a", "b"))
    args = build_parser().parse_args(["export", "r"])
    assert ExportConfig(**config_values(ExportConfig, args)) == ExportConfig(run="r")


def test_a_flag_named_in_the_config_is_the_flag_used():
    args = build_parser().parse_args(["serve", "r", "--request-timeout", "2.5"])
    assert config_values(ServeConfig, args)["request_timeout_seconds"] == 2.5


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("top_k must be in 1..10, got 11", "--top-k must be in 1..10, got 11"),
        ("unknown model 'last'; choose from: final, best", "unknown --model 'last'; choose"),
        ("request_timeout_seconds must be > 0", "--request-timeout must be > 0"),
        ("an ensemble needs at least two runs", "an ensemble needs at least two runs"),
    ],
)
def test_config_errors_name_the_flag_on_the_command_line(message, said):
    assert as_flags(message).startswith(said)
