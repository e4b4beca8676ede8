"""Bad command-line input: one line naming the problem and the fix, exit status 2, before any cell runs."""
from __future__ import annotations

import argparse
from typing import NoReturn

PROG = "lsnet-bench"


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def csv_list(text: str) -> list[str]:
    """The non-empty items of a comma-separated list."""
    return [s.strip() for s in text.split(",") if s.strip()]
