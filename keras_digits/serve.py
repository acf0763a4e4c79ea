"""`python -m keras_digits.serve`: serve the draw-a-digit page and the HTTP prediction endpoint.

The command lives in `keras_digits.serving.server`; this module is its name on the command line.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.serving.server import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
