"""``python -m reports DIR [DIR ...] [-o OUT]``: (re-)render the HTML report of one or more results folders.

``python -m reports compare A B`` compares the latency rows of two runs (or, with ``--models M1,M2``,
two models of run A): ratio B/A with its interval; faster or slower only when the interval excludes 1.
Within one run, rows with paired ratios (interleaved rounds) are compared by those; two different runs
share no rounds, which the output says, and their interval comes from the rows' latency intervals.
Bad input (a missing, empty or unreadable folder, an unwritable output) exits 2 with one line.
"""
from __future__ import annotations

import argparse
import sys

from reports.load import ResultsError, load_run


def _compare(argv: list[str]) -> int:
    from reports.compare import CROSS_RUN, compare, format_table
    p = argparse.ArgumentParser(prog="python -m reports compare")
    p.add_argument("a", metavar="A", help="results folder")
    p.add_argument("b", metavar="B", nargs="?", help="results folder (default: A, with --models)")
    p.add_argument("--models", default=None, help="M1,M2: compare model M2 against M1")
    args = p.parse_args(argv)
    run_a = load_run(args.a)
    run_b = load_run(args.b) if args.b else run_a
    ra, rb = run_a.rows, run_b.rows
    if args.models:
        m1, _, m2 = args.models.partition(",")
        if not m2:
            raise ResultsError("--models takes two model names, e.g. lsnet_t,repvit_m0_9")
        ra, rb = ra[ra["model"] == m1].assign(model="*"), rb[rb["model"] == m2].assign(model="*")
    elif not args.b:
        raise ResultsError("compare needs two folders, or one folder and --models M1,M2")
    if run_a.run_id != run_b.run_id:
        print(CROSS_RUN)
    print(format_table(compare(ra, rb)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["compare"]:
            return _compare(argv[1:])
        from reports.render import render_many
        p = argparse.ArgumentParser(prog="python -m reports", description=__doc__.splitlines()[0].split(":", 1)[1])
        p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders (results.jsonl/json/csv, env.json)")
        p.add_argument("-o", "--out", help="output HTML file (default: DIR/report.html for one folder, "
                                           "./report.html for several)")
        args = p.parse_args(argv)
        path = render_many(args.dirs, args.out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write the report ({e.strerror or e}: {e.filename}); choose another -o", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
