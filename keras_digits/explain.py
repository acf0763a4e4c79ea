"""`python -m keras_digits.explain`: show why each model read what it read (onnxruntime only).

The command lives in `keras_digits.reading.explain`; this module is its name on the command line.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.reading.explain import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
