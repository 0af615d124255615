"""Command-line arguments made from config dataclasses: each field's help, choices and
flag are written once, in its metadata (config.option), and read here."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing

from mnistlab import config
from mnistlab.config import choices_of, flag_of

# Every config with command-line fields.
CONFIGS = (
    config.TrainConfig, config.TuneConfig, config.PredictConfig, config.ReadConfig,
    config.EnsembleConfig, config.PruneConfig, config.ExportConfig, config.ServeConfig,
)  # fmt: skip


def add_fields(
    parser: argparse.ArgumentParser,
    cls: type,
    names: typing.Container[str] | None = None,
    base: typing.Any = None,
) -> None:
    """An argument per command-line field of the config class `cls` (or of `names`): a
    positional one for a field without a default, an option for the others.

    With `base` (a config), options left out are left out of the parsed args (to keep
    `base`'s values), and the help shows `base`'s value as the default.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.metadata["cli"] or (names is not None and field.name not in names):
            continue
        scalar, many = _scalar_type(hints[field.name])
        default = field.default if base is None else getattr(base, field.name)
        kwargs: dict[str, typing.Any] = {"help": field.metadata["help"]}
        # None, False and () read as "none"; 0 is a value (a seed).
        shown = not (default is None or default is False or default == ())
        if shown and default is not dataclasses.MISSING and "default:" not in kwargs["help"]:
            kwargs["help"] += f" (default: {default})"
        if choices_of(field):
            kwargs["choices"] = choices_of(field)
        if scalar is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = scalar
        if many:
            kwargs["nargs"] = "+"
        if field.default is dataclasses.MISSING:
            metavar = field.metadata["metavar"] or field.name.upper()
            parser.add_argument(field.name, metavar=metavar, **kwargs)
            continue
        flag = flag_of(field)
        kwargs["default"] = argparse.SUPPRESS if base is not None else default
        parser.add_argument(flag, dest=field.name, **kwargs)


def config_values(cls: type, args: argparse.Namespace) -> dict[str, typing.Any]:
    """The values of `cls`'s fields that the parsed args hold (lists become tuples)."""
    return {
        f.name: tuple(v) if isinstance(v := getattr(args, f.name), list) else v
        for f in dataclasses.fields(cls)
        if hasattr(args, f.name)
    }


def as_flags(message: str) -> str:
    """A config error that starts with a field name ("top_k must be ...", "unknown model
    'x'; ..."), with the command-line flag for it instead."""
    flags = {
        f.name: flag_of(f)
        for cls in CONFIGS
        for f in dataclasses.fields(cls)
        if f.metadata["cli"] and f.default is not dataclasses.MISSING
    }
    match = re.match(r"(unknown )?(\w+)", message)
    if match is None or match[2] not in flags:
        return message
    return message[: match.start(2)] + flags[match[2]] + message[match.end(2) :]


def _scalar_type(tp: typing.Any) -> tuple[type, bool]:
    """(the type argparse converts each value to, whether the field takes several)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return args[0], True
    return (args[0] if args else tp), False
