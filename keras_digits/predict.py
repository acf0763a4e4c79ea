"""`python -m keras_digits.predict`: read the digits and numbers in image files (onnxruntime only).

The command lives in `keras_digits.reading.predict`; this module is its name on the command line.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.reading.predict import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
