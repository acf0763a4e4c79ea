"""`python -m keras_digits.export all|MODEL...`: SavedModel, ONNX and LiteRT files with parity
proven (`keras_digits.deploy.export`), then the report rewritten to show them
(`keras_digits.analysis.report`) unless --no-report.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.deploy.export import build_parser, export_models

__all__ = ["build_parser", "main"]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    code = export_models(args)
    if code == 0 and not args.no_report:
        from keras_digits.analysis.report import build_report

        index = build_report(args.dataset, args.models_dir, args.report_dir, args.out_dir,
                             args.data_dir)
        print(f"report updated: {index}")
    return code


if __name__ == "__main__":
    sys.exit(run_cli(main))
