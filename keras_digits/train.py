"""`python -m keras_digits.train all|MODEL...`: train models (`keras_digits.training.train`);
`all` ends by writing the report (`keras_digits.analysis.report`) unless --no-report.
"""

import sys

from keras_digits.core.cli import run_cli
from keras_digits.training.train import build_parser, train_models

__all__ = ["build_parser", "main"]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    results = train_models(args)
    if results is not None and args.models == ["all"] and not args.no_report:
        from keras_digits.analysis.report import build_report

        index = build_report(args.dataset, args.out_dir, data_dir=args.data_dir)
        print(f"report written: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
