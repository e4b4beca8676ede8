"""``python -m reports DIR [DIR ...] [-o OUT]``: (re-)render the HTML report of one or more results folders."""
from __future__ import annotations

import argparse
import sys

from reports.load import ResultsError
from reports.render import render_many


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders (with results.csv/results.json, env.json)")
    p.add_argument("-o", "--out", help="output HTML file (default: DIR/report.html for one folder, "
                                       "./report.html for several)")
    args = p.parse_args(argv)
    try:
        path = render_many(args.dirs, args.out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
