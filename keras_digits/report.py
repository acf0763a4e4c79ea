"""`python -m keras_digits.report`: write the HTML report of every trained model.

The command lives in `keras_digits.analysis.report`; this module is its name on the command line.
"""

import sys

from keras_digits.analysis.report import build_parser, main
from keras_digits.core.cli import run_cli

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
