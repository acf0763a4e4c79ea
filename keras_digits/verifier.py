"""`python -m keras_digits.verifier`: train and export the one-digit verifier for numbers.

The command lives in `keras_digits.deploy.verifier`; this module is its name on the command line.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.deploy.verifier import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
