"""`python -m keras_digits.calibrate`: fit trained models' temperature on the validation split.

The command lives in `keras_digits.training.calibrate`; this module is its name on the command line.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.training.calibrate import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
