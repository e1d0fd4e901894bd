"""The ``plm`` console command: parse arguments, call the library, print or write results.

Each area of the toolkit registers its sub-commands from one module in ``plmkit.commands``;
this file only assembles them and turns :class:`PlmError` into a one-line message and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from plmkit.errors import PlmError

# One module per area; each defines ``register(subparsers)`` and sets ``func`` on its parsers.
COMMAND_MODULES = (
    "plmkit.commands.data",
    "plmkit.commands.tokenize",
    "plmkit.commands.bert",
    "plmkit.commands.pretrain",
    "plmkit.commands.finetune",
    "plmkit.commands.seq2seq",
    "plmkit.commands.gpt",
    "plmkit.commands.classic",
    "plmkit.commands.ladder",
    "plmkit.commands.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # area not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except PlmError as exc:
        print(f"plm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"plm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
