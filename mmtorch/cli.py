"""The ``mmtorch`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmtorch.demo import run_demo

    return run_demo(epochs=args.epochs, out=args.out, seed=args.seed, progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtorch",
        description="On-the-fly, length-aware speech + text preprocessing for PyTorch.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a text + audio emotion model on the bundled sample corpus",
        description=(
            "Train a small text + audio classifier with Lightning on the bundled 64-utterance corpus "
            "(features computed on the training device), compare with text-only and audio-only models, "
            "report featurization throughput and write a PNG of one utterance's features. No network needed."
        ),
    )
    demo.add_argument("--epochs", type=int, default=40, help="training epochs per model (default 40)")
    demo.add_argument(
        "--out", default="mmtorch-demo.png", help="where to write the PNG (default mmtorch-demo.png)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mmtorch import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"mmtorch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
