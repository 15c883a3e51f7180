"""CLI: python -m core <dataset|plan|train|eval|export|serve> ...

Each command lives in core/cli/<name>.py with `add_parser(subparsers)`; the parser's `func`
returns the exit code. StudioError prints its message and hint and exits 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import StudioError

COMMANDS = ["dataset", "train", "plan", "eval", "export", "serve"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="Trinity Studio engine")
    parser.add_argument("--workspace", help="workspace folder (default ./workspace or $TRINITY_WORKSPACE)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"core.cli.{name}").add_parser(sub)
    args = parser.parse_args(argv)
    from core.quiet import silence_known_warnings

    silence_known_warnings()
    if args.workspace:
        import os
        os.environ["TRINITY_WORKSPACE"] = args.workspace
    try:
        return int(args.func(args) or 0)
    except StudioError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
