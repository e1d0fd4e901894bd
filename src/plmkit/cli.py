"""The ``plm`` console command: parse arguments, call the library, print or write results.

Each area of the toolkit registers its sub-commands from one module in ``plmkit.commands``;
this file only assembles them and turns :class:`PlmError` into a one-line message and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

from plmkit._io import claim_output
from plmkit.commands._types import OneLineParser, positive_float
from plmkit.errors import PlmError
from plmkit.models.pretrained import MAX_PARAMETERS_ENV

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
    "plmkit.commands.export",
    "plmkit.commands.serve",
    "plmkit.commands.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="plm", description=__doc__.splitlines()[0])
    parser.add_argument("--max-parameters", type=positive_float, metavar="N",
                        help="refuse a model config describing more parameters than N (default: "
                             "the smaller of 4e9 and what fits in 3/4 of this machine's RAM; "
                             "also $PLMKIT_MAX_PARAMETERS)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # a module that fails to import is a bug: let it show
        importlib.import_module(name).register(subparsers)
    return parser


def _owned_output(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Every command that writes an ``--output`` holds it alone while it runs (one lock here,
    so a command added later is covered too). Under torchrun the ranks share one output, and
    rank 0 holds the lock for all of them."""
    output = getattr(args, "output", None)
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output):
        return contextlib.nullcontext()
    if getattr(args, "output_kind", None) == "folder" and Path(output).exists() \
            and not Path(output).is_dir():
        raise PlmError("is a file; --output names the folder this run writes", path=output,
                       field="output")
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return claim_output(output)


@contextlib.contextmanager
def _parameter_bound(limit: float | None):
    """``--max-parameters`` for this command only: the bound is read where configs are checked
    (models/pretrained.py) from PLMKIT_MAX_PARAMETERS, set here and restored afterwards so an
    in-process caller of :func:`main` is left as it was."""
    if limit is None:
        yield
        return
    saved = os.environ.get(MAX_PARAMETERS_ENV)
    os.environ[MAX_PARAMETERS_ENV] = str(int(limit))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(MAX_PARAMETERS_ENV, None)
        else:
            os.environ[MAX_PARAMETERS_ENV] = saved


def _suggestion(parser: argparse.ArgumentParser, command: str, error: PlmError) -> str:
    """The error's flag suggestion, only if this command accepts that flag."""
    if not error.suggest:
        return ""
    flag = error.suggest.split()[0]
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public walk
        sub = action.choices.get(command) if isinstance(action.choices, dict) else None
        if sub is not None and flag in sub._option_string_actions:  # noqa: SLF001
            return f"; or pass {error.suggest}"
    return ""


# Commands left with glibc's malloc as it is (plmkit.runtime.keep_freed_memory): a server's
# batches are a few short requests, measured no faster with freed memory kept, and it held
# ~100 MB more for as long as it ran (benchmarks/serve_load.py, README).
HOLDS_MEMORY_LOW = frozenset({"serve"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad flag (2, already printed as one line)
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command not in HOLDS_MEMORY_LOW:
        from plmkit.runtime import keep_freed_memory

        keep_freed_memory()  # the process is ours: tensors reuse freed memory (plmkit.runtime)
    try:
        with _parameter_bound(args.max_parameters), _owned_output(args):
            result = args.func(args)
    except PlmError as exc:
        print(f"plm {args.command}: error: {exc}{_suggestion(parser, args.command, exc)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"plm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
