"""The lsnet-bench command."""
from suites.cli.main import main

__all__ = ["main"]
