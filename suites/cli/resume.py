"""``lsnet-bench resume DIR`` (= ``lsnet-bench --resume DIR``): finish the sweep recorded in DIR's plan.json,
running only the cells without a final row, with the settings the run recorded."""
from __future__ import annotations

import argparse
from pathlib import Path

from suites.cli.usage import PROG, OneLineParser, UsageError

SWITCHES = ("--retry-errors", "--no-progress", "--no-report")


def _add_switches(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retry-errors", action="store_true", help="also re-run cells that ended in error")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not render report.html at the end")


def main(argv: list[str]) -> int:
    """``lsnet-bench resume DIR [--retry-errors] [--no-progress] [--no-report]``."""
    p = OneLineParser(prog=f"{PROG} resume", description="Finish the sweep recorded in DIR (its plan.json): run "
                                                         "only the cells without a final row, with the settings "
                                                         "the run recorded.")
    p.add_argument("dir", metavar="DIR", help="the run folder to finish")
    _add_switches(p)
    args = p.parse_args(argv)
    return resume(Path(args.dir), [PROG, "resume", *argv], retry_errors=args.retry_errors,
                  progress=not args.no_progress, report=not args.no_report)


def from_run_flags(argv: list[str]) -> int:
    """``lsnet-bench [run] --resume DIR ...``: the same as ``resume DIR``; any other flag is refused."""
    p = OneLineParser(prog=f"{PROG} run")
    p.add_argument("--resume", required=True, metavar="DIR")
    _add_switches(p)
    args, others = p.parse_known_args(argv)
    if others:
        raise UsageError(f"--resume takes no other arguments but {', '.join(SWITCHES[:-1])} and {SWITCHES[-1]} "
                         f"(got {' '.join(others)}); the sweep is the one recorded in {args.resume}/plan.json")
    return resume(Path(args.resume), [PROG, "run", *argv], retry_errors=args.retry_errors,
                  progress=not args.no_progress, report=not args.no_report)


def resume(run_dir: Path, argv: list[str], retry_errors: bool, progress: bool, report: bool) -> int:
    """Run the cells of ``run_dir``'s recorded plan that have no final row (``error`` rows too with
    ``retry_errors``); ``argv`` is the command line env.json records for the session."""
    from suites.cli.run import RunSettings, run_plan
    from suites.sweep import rows, rundir
    try:
        tasks, recorded = rundir.read_plan(run_dir)
        settings = RunSettings.from_dict(recorded)
    except rundir.RunDirError as exc:
        raise UsageError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{run_dir}/{rundir.PLAN_NAME} holds unreadable settings ({exc}); it cannot be "
                         "resumed, run the sweep again into a new folder") from None
    tasks = rundir.remaining(tasks, rundir.finished_cells(run_dir, retry_errors))
    return run_plan(tasks, settings, run_dir, rows.new_run_id(), argv, resumed=True, progress=progress,
                    report=report)
