"""`python -m keras_digits.evaluate`: score a labelled folder, or Semeion, through predict's path.

The command lives in `keras_digits.analysis.evaluate`; this module is its name on the command line.
"""

import sys

from keras_digits.analysis.evaluate import build_parser, main
from keras_digits.core.cli import run_cli

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
