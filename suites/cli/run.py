"""Running a plan into a run folder: the folder's lock, the recorded plan (plan.json) of a new run, the
session in env.json, the executor, then the summary and report.html.

Exit status: 0 when every cell ended ok, oom or skipped; 1 when any cell ended in error, or when the disk
filled up (the run ends like an interruption: what is on disk stays intact and --resume finishes it);
130 (or 128 + the signal) when interrupted.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from suites.cli.usage import PROG, UsageError
from suites.core.cell import Task
from suites.core.resultfiles import DiskFull


@dataclass
class RunSettings:
    """How a plan runs besides its cells; recorded in plan.json so that a resumed run runs the same way."""
    executor: str                   # local or ray
    isolation: str                  # auto, process or inline
    cell_timeout: float | None      # seconds before a cell is stopped
    ray_address: str | None
    nodes: list[str]                # the Ray nodes to run on (empty: every node)
    device: str | None              # --device as given (the Ray executor places cells by it)
    devices: list[str]              # the planned devices (env.json describes the visible ones)
    threads: int                    # CPU threads of every cell (env.json records them)
    reference: str                  # the model every ratio is taken against

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSettings":
        """The settings of ``d``; ValueError naming the missing or unknown keys."""
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise ValueError(f"settings lack {sorted(names - set(d))} and have unknown {sorted(set(d) - names)}")
        return cls(**d)


def new_run_dir(out: str | None, run_id: str) -> Path:
    """The folder of a new run: ``--out``, else ``results/RUN_ID``; refused when it already holds results."""
    from suites.sweep.rundir import RunDirError, check_writable
    path = Path(out) if out else Path("results") / run_id
    if (path / "results.csv").exists() or (path / "results.jsonl").exists():
        raise UsageError(f"--out {out} already holds results; finish it with --resume {out} or choose a new "
                         "folder (earlier rows are never overwritten)")
    try:
        check_writable(path)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    return path


def run_plan(tasks: list[Task], settings: RunSettings, run_dir: Path, run_id: str, argv: list[str], *,
             resumed: bool, progress: bool = True, report: bool = True) -> int:
    """Run ``tasks`` into ``run_dir`` while holding its lock (a held lock is a :class:`UsageError`). A new
    run first records its plan; ``argv`` is the command line env.json records. Returns the exit status."""
    from suites.sweep import rundir
    lock = rundir.RunLock(run_dir)
    try:
        lock.acquire()
    except rundir.RunDirError as exc:
        raise UsageError(str(exc)) from None
    try:
        if not resumed:
            rundir.write_plan(run_dir, tasks, settings.to_dict())
        return _run(tasks, settings, run_dir, run_id, argv, resumed, progress, report)
    except DiskFull as exc:                  # before the sweep began (the plan, env.json, the csv header)
        _say_disk_full(exc, run_dir)
        return 1
    finally:
        lock.release()


def _say_disk_full(exc: DiskFull, run_dir: Path) -> None:
    """The one line a full disk ends a run with: which file, how many rows are safe, what to do."""
    from suites.core.schema import read_jsonl
    from suites.sweep.rundir import PLAN_NAME
    then = f"run --resume {run_dir}" if (run_dir / PLAN_NAME).is_file() else "run the command again"
    print(f"{PROG}: no space left on device while writing {exc.path}; {len(read_jsonl(run_dir / 'results.jsonl'))} "
          f"rows are on disk and intact; free space and {then}", file=sys.stderr)


def _executor(settings: RunSettings) -> Any:
    from suites import executors
    if settings.executor == "ray":
        return executors.get("ray", address=settings.ray_address, nodes=settings.nodes, devices=settings.device,
                             isolation=settings.isolation, timeout=settings.cell_timeout)
    return executors.get("local", isolation=settings.isolation, timeout=settings.cell_timeout)


def _run(tasks: list[Task], settings: RunSettings, run_dir: Path, run_id: str, argv: list[str], resumed: bool,
         progress: bool, report: bool) -> int:
    from suites.cli.console import drift_lines, summary_table
    from suites.core import registry
    from suites.core.cell import Context
    from suites.core.devices import visible_devices
    from suites.sweep import envfile, rows, rundir
    from suites.sweep.run import run_sweep
    from suites.sweep.writer import ResultWriter
    devices = sorted(({c.device for t in tasks for c in t.cells} | set(settings.devices)) & set(visible_devices()))
    n_cells = sum(len(t.cells) for t in tasks)
    env = envfile.start_session(run_dir, devices, settings.threads, argv, run_id, resume=resumed,
                                planned_cells=n_cells)
    writer = ResultWriter(run_dir, env["run_id"])
    executor = _executor(settings)
    ctx = Context(run_dir=run_dir.resolve(), progress=progress)
    code, reason, full = 0, "completed", None
    try:
        with rundir.signals_interrupt() as signals:
            run_sweep(tasks, executor, writer, ctx, progress=progress, check=signals.raise_if_received)
    except KeyboardInterrupt as exc:
        executor.close()
        code = exc.exit_code if isinstance(exc, rundir.Interrupted) else 130
        print(f"\ninterrupted: {len(writer.rows)} of {n_cells} cells measured; finish with --resume {run_dir}",
              file=sys.stderr)
        reason = "interrupted"
    except DiskFull as exc:
        full = exc
    finally:
        try:
            env["hosts"].update(executor.environments(settings.threads))   # the other machines that measured
        except Exception as exc:  # noqa: BLE001  (never lose the rows for the environment's sake)
            print(f"warning: host environments not gathered ({type(exc).__name__}: {exc})", file=sys.stderr)
        executor.close()
    try:
        if full is None:
            writer.consolidate()
    except DiskFull as exc:
        full = exc
    errors = sum(r["status"] == "error" for r in writer.rows)
    if code == 0 and errors:
        code, reason = 1, "failed"
    if full is not None:
        code, reason = 1, f"no space left on device while writing {full.path}"
    drift = rows.drift_summary(writer.rows)
    try:
        envfile.end_session(run_dir, env, reason, measured_cells=len(writer.rows), drift=drift)
    except DiskFull:
        pass                                 # the folder's end stays unrecorded; its rows are intact
    if full is not None:
        _say_disk_full(full, run_dir)
        return code
    print(summary_table(writer.rows))
    for line in drift_lines(drift):
        print(line)
    for name in dict.fromkeys(r["suite"] for r in writer.rows):
        summarize = registry.get(name).console_summary
        if summarize is not None:
            lines = summarize([r for r in writer.rows if r["suite"] == name])
            if lines:
                print(lines)
    print(f"results: {run_dir}")
    if errors:
        print(f"{errors} of {len(writer.rows)} cells ended in error (see the error column)", file=sys.stderr)
    if report:
        _render_report(run_dir)
    return code


def _render_report(run_dir: Path) -> None:
    try:
        from reports import render
        print(f"report: {render(run_dir)}")
    except Exception as exc:  # noqa: BLE001  (a report failure must not lose results)
        print(f"warning: report not rendered ({type(exc).__name__}: {exc}); results are in {run_dir}", file=sys.stderr)
