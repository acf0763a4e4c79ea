"""Shared command-line plumbing: one exception type for user mistakes and one-line errors.

Every command catches `UserError` at the top and prints a single `error: ...` line that says
what is wrong and what to do, then exits non-zero. Tracebacks are for `--debug` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from keras_digits.core.names import DATASET_NAMES, MODEL_NAMES

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A problem with the user's input or environment, described in one actionable line.

    The one exception the package raises for bad input, from the command line and the Python
    API alike (`from keras_digits import UserError`); a ValueError, so code that already catches
    those catches it too."""


# Set by the `keras-digits` command to the name it was called by ("keras-digits train"), so
# usage lines and error hints name the command the user typed, not `python -m ...`.
invoked_as: str | None = None


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (with a pointer to --help), not a usage dump."""

    def __init__(self, *args, **kwargs) -> None:
        if invoked_as is not None:
            kwargs["prog"] = invoked_as
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def share(text: str) -> float:
    """A fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be from 0 to 1")
    return value


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Run `main`, turning a `UserError` (or Ctrl-C) into one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return main(args)
    except UserError as exc:
        if "--debug" in args:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # disk full, permissions, vanished folders: the environment's fault
        if "--debug" in args:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; free some space or fix permissions, "
              "then run the same command again", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def add_model_arguments(parser: Parser) -> None:
    """The MODEL... and --dataset arguments shared by train and export."""
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=f"'all' or one or more of: {', '.join(MODEL_NAMES)}")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)


def expand_models(requested: list[str]) -> list[str]:
    """Model names in the order asked, `all` expanded, duplicates dropped, unknown refused."""
    names: list[str] = []
    for name in requested:
        for model in (list(MODEL_NAMES) if name == "all" else [name]):
            if model not in MODEL_NAMES:
                raise UserError(f"unknown model {model!r}: choose all or one of "
                                f"{', '.join(MODEL_NAMES)}")
            if model not in names:
                names.append(model)
    return names
