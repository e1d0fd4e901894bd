"""Every number flag of every command says what it accepts, and refuses anything else in one line
with exit code 2 before any work (issue: untrusted inputs, class 6).

``--hidden -8``, ``--batch-size 0`` and ``--lr -1`` used to reach the model or the Trainer and end
in a traceback. The walk reads the CLI's own parser, so a flag added next month is covered: it
must use one of the typed ranges in ``plmkit.commands._types``, and each range's refused example
is tried on it.
"""

from __future__ import annotations

import argparse

import pytest

from _commands import parsable_argv, subcommands
from plmkit.cli import main
from plmkit.commands._types import NUMBER_TYPES, REFUSED_EXAMPLE


def _numeric_flags() -> list[tuple[str, str, object]]:
    flags = []
    for command, parser in sorted(subcommands().items()):
        for action in parser._actions:  # noqa: SLF001
            if action.option_strings and (action.type in (int, float)
                                          or action.type in NUMBER_TYPES):
                flags.append((command, action.option_strings[-1], action.type))
    return flags


FLAGS = _numeric_flags()


def test_no_number_flag_takes_a_bare_int_or_float():
    bare = [f"{command} {flag}" for command, flag, kind in FLAGS if kind in (int, float)]
    assert bare == []
    assert len(FLAGS) > 100  # the walk found the commands' flags


@pytest.mark.parametrize("command, flag, kind", [f for f in FLAGS if f[2] in NUMBER_TYPES],
                         ids=[f"{c}{f}" for c, f, k in FLAGS if k in NUMBER_TYPES])
def test_a_value_out_of_range_is_one_line_and_writes_nothing(command, flag, kind, tmp_path,
                                                            capsys):
    output = tmp_path / "out"
    argv = parsable_argv(command, subcommands()[command], output) + [flag, REFUSED_EXAMPLE[kind]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
    assert kind.description in lines[0] or "expected" in lines[0]
    assert not output.exists()


@pytest.mark.parametrize("text, kind, ok", [
    ("8", "positive_int", True), ("0", "positive_int", False), ("-8", "positive_int", False),
    ("0", "non_negative_int", True), ("1.5", "any_int", False), ("-3", "any_int", True),
    ("1e-4", "positive_float", True), ("0", "positive_float", False),
    ("inf", "positive_float", False), ("0", "probability", True), ("1", "probability", True),
    ("1.01", "probability", False), ("0", "fraction", False), ("1", "fraction", True),
    ("nan", "any_float", False), ("big", "positive_int", False),
])
def test_the_ranges(text, kind, ok):
    from plmkit.commands import _types

    parse = getattr(_types, kind)
    if ok:
        parse(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
