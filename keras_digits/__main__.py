"""`keras-digits COMMAND ...` (or `python -m keras_digits COMMAND ...`): one entry point for
every stage. Each command is the stage module's own command line, imported only when chosen,
so `keras-digits predict` starts without TensorFlow, as `python -m keras_digits.predict` does.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import keras_digits
from keras_digits.core import cli

# Command -> what it does; each is the module keras_digits.<command>.
COMMANDS = {
    "train": "train models (all, or by name) and write saved_models/",
    "calibrate": "fit the temperature of models trained before calibration existed",
    "export": "export to SavedModel, ONNX and LiteRT, and prove parity with Keras",
    "verifier": "train the one-digit verifier that number mode cuts touching digits with",
    "predict": "read digits in images (onnxruntime only, no TensorFlow)",
    "explain": "show why each model read what it read: evidence maps (onnxruntime only)",
    "evaluate": "score a labelled folder of images, or Semeion",
    "report": "write the HTML report of every trained model",
    "bench": "measure training and inference speed against in-run baselines",
    "serve": "serve the draw-a-digit page and the HTTP prediction endpoint",
}
# Modules that only the training install brings (`pip install 'keras_digits[train]'`), and the
# commands that cannot start without TensorFlow and Keras.
TRAINING_PACKAGES = {"tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "tensorflow_datasets"}
NEEDS_TRAINING = {"train", "calibrate", "export", "verifier", "report", "bench"}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: keras-digits COMMAND [ARGS...]   "
             f"(keras_digits {keras_digits.__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in COMMANDS.items()]
    lines += ["", "`keras-digits COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"keras_digits {keras_digits.__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}: choose one of {', '.join(COMMANDS)} "
              "(see `keras-digits --help`)", file=sys.stderr)
        return cli.EXIT_USER_ERROR
    if command in NEEDS_TRAINING:  # say so before any work, not after loading the data
        for package in ("tensorflow", "keras"):
            if importlib.util.find_spec(package) is None:
                return _needs_training(command, package)
    cli.invoked_as = f"keras-digits {command}"
    try:  # stages import TensorFlow at the top or on first use: either can fail here
        return cli.run_cli(importlib.import_module(f"keras_digits.{command}").main, rest)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_PACKAGES:
            raise
        return _needs_training(command, exc.name)


def _needs_training(command: str, missing: str) -> int:
    print(f"error: `keras-digits {command}` needs the training packages ({missing} is not "
          "installed); install them with `pip install 'keras_digits[train]'`", file=sys.stderr)
    return cli.EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
