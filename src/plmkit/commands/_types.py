"""Argument types that say what a number flag may be, so a bad value is refused by the parser.

``--hidden -8``, ``--batch-size 0`` and ``--lr -1`` used to reach the model or the Trainer and end
in a traceback, or worse, run. Every numeric flag of ``plm`` takes one of these as its ``type=``
(a test walks the parser and fails on a bare ``int`` or ``float``), and argparse turns the
``ArgumentTypeError`` into one line and exit code 2 before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(kind: type, text: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, not {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, not {text!r}")
    return value


def _bounded(kind: type, low: float | None, high: float | None, *, low_open: bool = False,
             high_open: bool = False, description: str) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = _number(kind, text)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {description}, not {text}")
        return value

    parse.__name__ = description  # argparse names the type in some messages
    parse.description = description  # type: ignore[attr-defined]
    return parse


# Counts and sizes: batch sizes, layers, widths, epochs of whole passes.
positive_int = _bounded(int, 1, None, description="a whole number ≥ 1")
# Counts where 0 means "off" or "none": --save-every 0, --max-steps 0, --top-k 0.
non_negative_int = _bounded(int, 0, None, description="a whole number ≥ 0")
# Any whole number: seeds, column indices that may count from the end (-1).
any_int = _bounded(int, None, None, description="a whole number")
# Rates and budgets: learning rates, temperatures, minutes.
positive_float = _bounded(float, 0, None, low_open=True, description="a number > 0")
non_negative_float = _bounded(float, 0, None, description="a number ≥ 0")
# Probabilities and fractions: dropout, mask rates, sampling thresholds.
probability = _bounded(float, 0, 1, description="a number from 0 to 1")
fraction = _bounded(float, 0, 1, low_open=True, description="a number in (0, 1]")
# Rates that must leave something on both sides: a masking rate of 0 trains nothing, of 1 hides
# every token.
open_probability = _bounded(float, 0, 1, low_open=True, high_open=True,
                            description="a number strictly between 0 and 1")
any_float = _bounded(float, None, None, description="a finite number")

NUMBER_TYPES = (positive_int, non_negative_int, any_int, positive_float, non_negative_float,
                probability, fraction, open_probability, any_float)

# A value each type refuses, for the test that walks every numeric flag of every command.
REFUSED_EXAMPLE = {positive_int: "0", non_negative_int: "-8", any_int: "1.5",
                   positive_float: "-1", non_negative_float: "-1", probability: "1.5",
                   fraction: "0", open_probability: "1", any_float: "nan"}


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; plmkit promises one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


__all__ = ["NUMBER_TYPES", "OneLineParser", "REFUSED_EXAMPLE", "any_float", "any_int", "fraction",
           "open_probability",
           "non_negative_float", "non_negative_int", "positive_float", "positive_int",
           "probability"]
