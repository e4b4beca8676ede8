"""``lsnet-bench report`` and ``lsnet-bench compare``: the reports of results folders, and the latency
ratios of two runs (or two models of one run).

``report DIR [DIR ...] [-o OUT]`` (re-)renders the HTML report of one or more folders. ``compare A B``
(or ``compare A --models M1,M2``: two models of run A) gives each ratio B/A with its interval, faster or
slower only when the interval excludes 1. Within one run, rows with paired ratios (interleaved rounds)
are compared by those; two different runs share no rounds, which the output says, and their interval
comes from the rows' latency intervals. A missing, empty or unreadable folder, or an unwritable output,
is a :class:`UsageError`.
"""
from __future__ import annotations

from suites.cli.usage import PROG, OneLineParser, UsageError


def report(argv: list[str]) -> int:
    """``lsnet-bench report DIR [DIR ...] [-o OUT]``: prints the report's path."""
    from reports.load import ResultsError
    from reports.render import render_many
    p = OneLineParser(prog=f"{PROG} report", description="(Re-)render the HTML report of one or more results "
                                                         "folders; several are merged into one report.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders (results.jsonl/json/csv, env.json)")
    p.add_argument("-o", "--out", help="output HTML file (default: DIR/report.html for one folder, "
                                       "./report.html for several)")
    args = p.parse_args(argv)
    try:
        path = render_many(args.dirs, args.out)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write the report ({exc.strerror or exc}: {exc.filename}); choose another -o") \
            from None
    print(path)
    return 0


def compare(argv: list[str]) -> int:
    """``lsnet-bench compare A [B] [--models M1,M2]``: prints one line per compared configuration."""
    from reports.compare import CROSS_RUN, compare as compare_rows, format_table
    from reports.load import ResultsError, load_run
    p = OneLineParser(prog=f"{PROG} compare", description="Latency ratios B/A with their intervals: two runs, "
                                                          "or two models of one run.")
    p.add_argument("a", metavar="A", help="results folder")
    p.add_argument("b", metavar="B", nargs="?", help="results folder (default: A, with --models)")
    p.add_argument("--models", default=None, help="M1,M2: compare model M2 against M1")
    args = p.parse_args(argv)
    m1, _, m2 = (args.models or "").partition(",")
    if args.models and not m2:
        raise UsageError("--models takes two model names, e.g. lsnet_t,repvit_m0_9")
    if not args.models and not args.b:
        raise UsageError("compare needs two folders, or one folder and --models M1,M2")
    try:
        run_a = load_run(args.a)
        run_b = load_run(args.b) if args.b else run_a
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    ra, rb = run_a.rows, run_b.rows
    if args.models:
        ra, rb = ra[ra["model"] == m1].assign(model="*"), rb[rb["model"] == m2].assign(model="*")
    if run_a.run_id != run_b.run_id:
        print(CROSS_RUN)
    print(format_table(compare_rows(ra, rb)))
    return 0
