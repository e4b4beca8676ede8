"""The lsnet-bench command: ``lsnet-bench COMMAND [ARGS]``, the same as ``python run_bench.py COMMAND [ARGS]``.

Without a command (no arguments, or the first one is a flag) it is ``run``: ``lsnet-bench --suite latency``
is ``lsnet-bench run --suite latency``. Bad input is one line ``lsnet-bench: error: ...`` and exit status 2,
before any cell runs.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from suites.cli.parser import DESCRIPTION
from suites.cli.usage import PROG, OneLineParser, UsageError


def _run(argv: list[str]) -> int:
    """``run [flags]``: a new sweep into a new run folder (``--list`` and ``--resume DIR`` as their commands)."""
    from suites.cli import configure, listing, parser, resume
    from suites.cli.run import new_run_dir, run_plan
    from suites.sweep import plan, rows
    args = parser.build_parser().parse_args(argv)
    if args.list:
        return listing.show(args.executor, args.ray_address, args.nodes)
    if args.resume is not None:
        return resume.from_run_flags(argv)
    plan_kw, settings = configure.configure(args)
    tasks = plan.interleave(plan.plan(**plan_kw))
    run_id = rows.new_run_id()
    return run_plan(tasks, settings, new_run_dir(args.out, run_id), run_id, [PROG, "run", *argv], resumed=False,
                    progress=not args.no_progress, report=not args.no_report)


def _resume(argv: list[str]) -> int:
    from suites.cli import resume
    return resume.main(argv)


def _list(argv: list[str]) -> int:
    from suites.cli import listing
    return listing.main(argv)


def _report(argv: list[str]) -> int:
    from suites.cli import reporting
    return reporting.report(argv)


def _compare(argv: list[str]) -> int:
    from suites.cli import reporting
    return reporting.compare(argv)


def _gate(argv: list[str]) -> int:
    from suites.gate import gate
    return gate.main(argv)


def _export_bench(argv: list[str]) -> int:
    from suites.engines import export_bench
    return export_bench.main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "run": (_run, "measure a sweep into a new run folder (the default command; run --help lists its flags)"),
    "resume": (_resume, "finish the sweep recorded in a run folder: DIR [--retry-errors] [--no-progress] "
                        "[--no-report]"),
    "list": (_list, "list models, suites, engines and visible devices ([--executor ray]: the cluster's nodes)"),
    "report": (_report, "(re-)render the HTML report of results folders: DIR [DIR ...] [-o OUT]"),
    "compare": (_compare, "latency ratios of two runs, or of two models of one run: A [B] [--models M1,M2]"),
    "gate": (_gate, "the A/B benchmark regression gate against a base commit"),
    "export-bench": (_export_bench, "time the SKA ONNX translations against the unfold export"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top level of the command, for ``--help``: the commands and what each does."""
    p = OneLineParser(prog=PROG, description=f"{DESCRIPTION} Without a command (no arguments, or a flag first) "
                                             f"it is run: {PROG} --suite latency = {PROG} run --suite latency.",
                      epilog=f"{PROG} COMMAND --help gives a command's flags.")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        build_parser().print_help()
        return 0
    name, rest = ("run", argv) if not argv or argv[0].startswith("-") else (argv[0], argv[1:])
    try:
        if name not in COMMANDS:
            raise UsageError(f"unknown command {name!r}; choose from {', '.join(COMMANDS)} (or give run flags, "
                             f"e.g. {PROG} --suite latency)")
        return COMMANDS[name][0](rest)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


__all__ = ["main"]
