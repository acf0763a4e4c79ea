"""`python -m keras_digits.bench`: measure speed against baselines run in the same invocation.

The command lives in `keras_digits.analysis.bench`; this module is its name on the command line.
"""

import sys

from keras_digits.analysis.bench import build_parser, main
from keras_digits.core.cli import run_cli

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
