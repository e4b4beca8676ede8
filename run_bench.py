"""``python run_bench.py ...``: the lsnet-bench command (see :mod:`suites.cli`)."""
import sys

from suites.cli import main

if __name__ == "__main__":
    sys.exit(main())
