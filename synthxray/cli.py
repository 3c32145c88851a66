"""The ``synthxray`` console script. Each sub-command lives in a module with ``add_parser(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# one module per sub-command; each defines add_parser(subparsers) and sets func=... on its parser
COMMANDS = [
    "synthxray.commands.demo",
    "synthxray.commands.evaluate",
    "synthxray.commands.export",
    "synthxray.commands.experiment",
    "synthxray.commands.federated",
    "synthxray.commands.generate",
    "synthxray.commands.prepare",
    "synthxray.commands.push",
    "synthxray.commands.train",
    "synthxray.commands.wrap",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="synthxray", description="Synthetic medical images that are measured, not assumed.")
    parser.add_argument("--version", action="version", version=f"synthxray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "flags", None) is True:  # a command whose flags a config dataclass parses (synthxray evaluate)
        args.flags = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        # the user's input errors: one clear line; anything unexpected keeps its traceback (synthxray.errors)
        from .errors import is_input_error, message

        if not is_input_error(exc):
            raise
        print(f"synthxray {args.command}: error: {message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
