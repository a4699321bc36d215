"""The ``mmtorch`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmtorch.demo import run_demo

    return run_demo(seconds=args.seconds, batch_size=args.batch_size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtorch",
        description="On-the-fly, length-aware speech + text preprocessing for PyTorch.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the main job on bundled/synthesized data",
        description=(
            "Featurize a padded batch of synthetic speech-like audio with every front-end preset, "
            "check batch invariance, and report throughput."
        ),
    )
    demo.add_argument("--seconds", type=float, default=60.0, help="total seconds of audio (default 60)")
    demo.add_argument("--batch-size", type=int, default=8, help="utterances per batch (default 8)")
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
