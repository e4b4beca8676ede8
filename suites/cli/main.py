"""lsnet-bench: measure LSNet and the baselines (latency, throughput, memory, FLOPs, accuracy, profile, ops, train).

A thin CLI: flags come from the registered suites (their options) and engines; the arguments are
checked before any cell runs; the sweep is planned from the suite descriptors and run through an
executor into the run folder (results.csv, results.jsonl/json, env.json); then a summary table and
report.html. Exit status: 0 when every cell ended ok, oom or skipped; 1 when any cell ended in
error; 2 for bad input (one line); 130 when interrupted.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from suites.core.schema import DTYPES
from suites.core.cell import PROTOCOLS

MODEL_GROUPS = ("default", "lsnet", "baselines", "all")
PROG = "lsnet-bench"


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    from suites import engines
    from suites import executors
    from suites.executors.local import ISOLATIONS
    from suites.core import registry
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suite", default="latency",
                   help=f"comma-separated suites: {', '.join(registry.names())} or all (all = every suite that has "
                        "what it needs; accuracy only when --data or --dataset is given)")
    p.add_argument("--engine", default=None,
                   help=f"comma-separated engines: {', '.join(engines.ENGINES)} (default eager; see --list)")
    p.add_argument("--device", default=None,
                   help="comma-separated devices: cpu, cuda (= cuda:0), cuda:N, all (every visible device); "
                        "default: cuda:0 when a GPU is visible, else cpu")
    p.add_argument("--models", default="default",
                   help="comma-separated model names or a group: default (lsnet_t, lsnet_s, lsnet_b and every baseline), "
                        "lsnet (all LSNet variants incl. distilled), baselines, all, or a family name; see --list")
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated batch sizes; default: each suite's own (latency/profile 1, memory 1,8,32, "
                        "accuracy 64, ops 8), throughput and train powers of two up to --max-batch, stopping at the "
                        "first out-of-memory batch")
    p.add_argument("--max-batch", type=int, default=None,
                   help="largest batch of the out-of-memory ladders (default: throughput 256 on CPU, 4096 on CUDA; "
                        "train 32 on CPU, 1024 on CUDA)")
    p.add_argument("--dtype", default="float32", help=f"comma-separated precisions: {', '.join(DTYPES)} "
                                                       "(amp = autocast: float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--channels-last", action="store_true", help="run models and inputs in channels_last layout")
    p.add_argument("--compile", action="store_true", help="alias of --engine compile (compilation is never timed)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode of the compile engine (default, "
                                                        "reduce-overhead, max-autotune, max-autotune-no-cudagraphs)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="eager engine: capture the forward in a CUDA graph and time graph replays (CUDA devices only)")
    p.add_argument("--no-fuse", action="store_true",
                   help="do not fold BN / RepVGG branches (default: fused for inference, the official protocol)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (torch.set_num_threads); default: torch's current count, recorded in every row")
    p.add_argument("--resolution", type=int, default=224, help="input height and width in pixels")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before timing (the first call is never timed)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed samples per cell (at least)")
    p.add_argument("--min-samples", type=int, default=30, help="timed samples per latency cell (at least)")
    p.add_argument("--protocol", default=None, choices=PROTOCOLS,
                   help="timed suites: interleaved = the cells of a comparison (one suite on one device) prepared "
                        "at once and measured round by round in a fresh random order, intervals and ratios from "
                        "the rounds; sequential = each cell alone, one after another (rows are not paired); "
                        "default interleaved (sequential with --executor ray)")
    p.add_argument("--reference", default=None, metavar="MODEL",
                   help="the model every ratio_to_ref is taken against (default lsnet_t when measured, else the "
                        "first model)")
    p.add_argument("--burst", type=float, default=0.05,
                   help="interleaved: seconds each cell is timed for in one round")
    p.add_argument("--max-time", type=float, default=4.0,
                   help="interleaved: seconds of timed samples per cell at most; rounds stop earlier once every "
                        "interval and ratio is within --precision")
    p.add_argument("--group-time", type=float, default=75.0,
                   help="interleaved: seconds of rounds one comparison group takes at most, once every cell has "
                        "--min-time (the budget of a large group: 35 models get about 2 s each)")
    p.add_argument("--precision", type=float, default=0.05,
                   help="interleaved: target half-width of every interval and ratio, relative (0.05 = +-5%%); "
                        "a ratio wider than it makes its row unstable")
    p.add_argument("--repeats", type=int, default=1,
                   help="time each cell of a timed suite in this many fresh processes; rows report the "
                        "between-process spread")
    p.add_argument("--parity-tol", type=float, default=None,
                   help="largest relative error of an engine's output from eager float32 (default: 1e-4 for "
                        "float32, 5e-2 for 16-bit); above it the row is an error")
    p.add_argument("--pin-cores", default=None, metavar="CORES",
                   help="run every cell on these CPU cores only, e.g. 0-1 (os.sched_setaffinity)")
    p.add_argument("--out", default=None, help="run folder (default: a new timestamped folder under results/); "
                                               "a folder that already holds results is refused (see --resume)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="finish the sweep recorded in DIR: run only the cells without a final row (no other "
                        "arguments needed; finished rows are never rewritten)")
    p.add_argument("--retry-errors", action="store_true", help="with --resume: also re-run cells that ended in error")
    p.add_argument("--oversubscribe", action="store_true",
                   help="allow --threads above the usable cores (rows then carry a warning)")
    p.add_argument("--isolation", default="auto", choices=ISOLATIONS,
                   help="where cells run: auto = a worker process for memory cells and CUDA cells, others in-process; "
                        "process = every cell in its own worker; inline = all in this process")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds before a cell is stopped (cells then run in worker processes)")
    p.add_argument("--executor", default="local", choices=executors.EXECUTORS,
                   help="local = this machine; ray = the nodes of a Ray cluster (needs the cluster extra; --device "
                        "then takes cpu or cuda = a pool, all, all:cpu, all:cuda = every device of every node)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster: HOST:PORT, auto (a running one), local (start one here); default: a running "
                        "cluster if one is found, else a local one")
    p.add_argument("--nodes", default=None, help="comma-separated Ray nodes (name, IP, hostname or custom resource)")
    for opt in registry.option_flags():
        suites_help = f"(suites: {', '.join(opt.suites)}; default: {opt.default})"
        if opt.type is bool:   # a switch: given = True, absent = the suite's default
            p.add_argument(opt.flag, dest=opt.field, action="store_true", default=None, help=f"{opt.help} {suites_help}")
            continue
        kind = {"choices": list(opt.choices)} if opt.choices else {}
        p.add_argument(opt.flag, dest=opt.field, type=opt.type, default=None, **kind, help=f"{opt.help} {suites_help}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not render report.html at the end")
    p.add_argument("--list", action="store_true", help="list models, suites, engines and visible devices, then exit")
    return p


def _choose(values: list[str], valid: tuple[str, ...] | list[str], what: str) -> list[str]:
    for v in values:
        if v not in valid:
            raise UsageError(f"unknown {what} {v!r}; choose from {', '.join(valid)}")
    if not values:
        raise UsageError(f"no {what} given; choose from {', '.join(valid)}")
    return list(dict.fromkeys(values))


def resolve_suites(spec: str) -> list[str]:
    from suites.core import registry
    valid = registry.names()
    names = _csv(spec)
    if "all" in names:
        return valid
    return _choose(names, valid + ["all"], "suite")


def resolve_engines(spec: str | None, compile_alias: bool) -> list[str]:
    from suites import engines
    chosen = _choose(_csv(spec), engines.ENGINES, "engine") if spec is not None else ([] if compile_alias else ["eager"])
    return chosen + (["compile"] if compile_alias and "compile" not in chosen else [])


def resolve_models(spec: str) -> list[str]:
    from suites.core import zoo
    out: list[str] = []
    for name in _csv(spec) or [""]:
        if name == "default":
            chosen = [n for n in ("lsnet_t", "lsnet_s", "lsnet_b") if n in zoo.names("lsnet")] + zoo.names("baselines")
        elif name in ("lsnet", "baselines", "all"):
            chosen = zoo.names(name)
        else:
            try:
                chosen = [zoo.spec(name).name]
            except ValueError:
                try:
                    chosen = zoo.names(name)   # a family name
                except ValueError:
                    raise UsageError(f"unknown model {name!r}; choose a group ({', '.join(MODEL_GROUPS)}) or one of "
                                     f"{', '.join(zoo.names('all'))}") from None
        out += [n for n in chosen if n not in out]
    return out


def resolve_devices(spec: str | None) -> list[str]:
    from suites.core.devices import DeviceError, parse_devices, visible_devices
    if spec is None:
        return ["cuda:0"] if "cuda:0" in visible_devices() else ["cpu"]
    try:
        return parse_devices(spec)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None


def parse_batch_sizes(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    sizes = []
    for s in _csv(spec):
        try:
            b = int(s)
        except ValueError:
            raise UsageError(f"batch size {s!r} is not an integer; give positive integers such as 1,8,32") from None
        if b <= 0:
            raise UsageError(f"batch size {b} must be a positive integer (> 0), e.g. 1,8,32")
        sizes.append(b)
    if not sizes:
        raise UsageError("no batch size given; give positive integers such as 1,8,32")
    return list(dict.fromkeys(sizes))


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value, allow_zero in (("--threads", args.threads, False), ("--resolution", args.resolution, False),
                                    ("--max-batch", args.max_batch, False), ("--min-samples", args.min_samples, False),
                                    ("--warmup", args.warmup, True), ("--min-time", args.min_time, True),
                                    ("--cell-timeout", args.cell_timeout, False), ("--repeats", args.repeats, False),
                                    ("--parity-tol", args.parity_tol, False), ("--burst", args.burst, False),
                                    ("--max-time", args.max_time, False), ("--precision", args.precision, False),
                                    ("--group-time", args.group_time, False)):
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number of seconds, got {value}")
        if value < 0 or (value == 0 and not allow_zero):
            raise UsageError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _suite_options(args: argparse.Namespace, suites: list[str]) -> dict[str, Any]:
    """Each chosen suite's options from the flags; a warning for options no chosen suite reads."""
    from suites.core import registry
    given = {opt.field: getattr(args, opt.field) for opt in registry.option_flags()}
    for opt in registry.option_flags():
        if given[opt.field] is not None and not set(opt.suites) & set(suites):
            print(f"warning: {opt.flag} is ignored: only suite(s) {', '.join(opt.suites)} read it", file=sys.stderr)
    out = {}
    for name in suites:
        try:
            out[name] = registry.build_options(registry.get(name), given)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    return out


def _list_nodes(args: argparse.Namespace) -> str:
    try:
        from suites.executors import ray as ray_executor
        ray_executor.connect(args.ray_address)
        return ray_executor.describe_nodes(_csv(args.nodes or ""))
    except (ImportError, ConnectionError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def list_everything() -> str:
    from suites import engines
    from suites.core import registry, zoo
    from suites.core.devices import device_name, visible_devices
    lines = ["models (name  family):"] + [f"  {n}  {zoo.spec(n).family}" for n in zoo.names("all")]
    lines += [f"model groups: {', '.join(MODEL_GROUPS)}", "suites:"]
    lines += [f"  {n}  {registry.get(n).description}" for n in registry.names()]
    lines += ["engines:"] + [f"  {name}  {'available' if why is None else 'unavailable: ' + why}"
                             for name, why in engines.availability().items()]
    lines += [f"dtypes: {', '.join(DTYPES)}", "visible devices:"]
    lines += [f"  {d}  {device_name(d)}" for d in visible_devices()]
    return "\n".join(lines)


def _cluster_devices(args: argparse.Namespace) -> list[str]:
    """The device kinds to plan for on Ray (``--device`` forms of :mod:`suites.executors.ray`)."""
    try:
        from suites.executors import ray as ray_executor
        return ray_executor.plan_devices(args.device, args.ray_address, _csv(args.nodes or ""))
    except (ImportError, ConnectionError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _executor(args: argparse.Namespace) -> Any:
    from suites import executors
    if args.executor == "ray":
        return executors.get("ray", address=args.ray_address, nodes=_csv(args.nodes or ""), devices=args.device,
                             isolation=args.isolation, timeout=args.cell_timeout)
    return executors.get("local", isolation=args.isolation, timeout=args.cell_timeout)


def _new_run_dir(out: str | None, run_id: str) -> Path:
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


def _usable_cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_models_accept(models: list[str], resolution: int) -> None:
    """Models fail below their total stride; small resolutions are checked with one forward each."""
    if resolution >= 64:
        return
    import torch

    from suites.core import zoo
    for name in models:
        try:
            with torch.inference_mode():
                zoo.create(name, img_size=resolution).eval()(torch.randn(1, 3, resolution, resolution))
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"--resolution {resolution} is too small for {name} "
                             f"({str(exc).splitlines()[0][:120]}); use --resolution 64 or more") from None


def _render_report(run_dir: Path) -> None:
    try:
        from reports import render
        print(f"report: {render(run_dir)}")
    except Exception as exc:  # noqa: BLE001  (a report failure must not lose results)
        print(f"warning: report not rendered ({type(exc).__name__}: {exc}); results are in {run_dir}", file=sys.stderr)


def configure(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse and validate ``argv``; the namespace and the keyword arguments of :func:`suites.sweep.plan.plan`."""
    args = build_parser().parse_args(argv)
    if args.list:
        return args, {}
    if args.resume is not None:
        return _configure_resume(args, argv)
    _check_numbers(args)
    cores = _usable_cores()
    if args.pin_cores is not None:
        from suites.core.hostinfo import parse_cores
        try:
            pinned = parse_cores(args.pin_cores)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not set(pinned) <= set(os.sched_getaffinity(0)):
            raise UsageError(f"--pin-cores {args.pin_cores}: cores {sorted(set(pinned) - os.sched_getaffinity(0))} "
                             f"are not usable here (usable: {sorted(os.sched_getaffinity(0))})")
        cores = len(pinned)
    if args.threads and args.threads > cores and not args.oversubscribe:
        raise UsageError(f"--threads {args.threads} is more than the {cores} usable cores (timings would "
                         "measure contention); lower it or pass --oversubscribe")
    if args.precision >= 1:
        raise UsageError(f"--precision is a relative half-width below 1 (0.05 = +-5%), got {args.precision}")
    if args.max_time < args.min_time:
        raise UsageError(f"--max-time {args.max_time:g} is below --min-time {args.min_time:g}; the budget must "
                         "allow the minimum")
    protocol = _protocol(args)
    suites = resolve_suites(args.suite)
    if "accuracy" in suites and args.data is None and args.dataset is None and "all" in _csv(args.suite):
        suites.remove("accuracy")   # all = every suite that has what it needs
    options = _suite_options(args, suites)
    engines_ = resolve_engines(args.engine, args.compile)
    dtypes = _choose(_csv(args.dtype), DTYPES, "dtype")
    devices = resolve_devices(args.device) if args.executor == "local" else _cluster_devices(args)
    models = resolve_models(args.models)
    if args.reference is not None and args.reference not in models:
        raise UsageError(f"--reference {args.reference} is not among the measured models; add it to --models or "
                         f"choose one of {', '.join(models[:8])}{', ...' if len(models) > 8 else ''}")
    from suites.interleave import reference_model
    reference = reference_model(models, args.reference)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    _check_models_accept(models, args.resolution)
    from suites.core.devices import is_cuda
    if args.cuda_graphs and not any(is_cuda(d) for d in devices):
        raise UsageError(f"--cuda-graphs needs a CUDA device; chosen devices: {', '.join(devices)}")
    from suites.engines.compile import COMPILE_MODES
    if args.compile_mode is not None and args.compile_mode not in COMPILE_MODES:
        raise UsageError(f"unknown --compile-mode {args.compile_mode!r}; choose from {', '.join(COMPILE_MODES)}")
    import torch
    plan_kw = dict(suites=suites, models=models, devices=devices, dtypes=dtypes, engines_=engines_,
                   batch_sizes=batch_sizes, max_batch=args.max_batch, options=options,
                   channels_last=args.channels_last, cuda_graphs=args.cuda_graphs, compile_mode=args.compile_mode,
                   fused=not args.no_fuse, resolution=args.resolution, threads=args.threads or torch.get_num_threads(),
                   warmup=args.warmup, min_time=args.min_time, min_samples=args.min_samples,
                   repeats=args.repeats, pin_cores=args.pin_cores, parity_tol=args.parity_tol, protocol=protocol,
                   reference=reference, burst=args.burst, max_time=args.max_time, precision=args.precision,
                   group_time=args.group_time)
    return args, plan_kw


def _protocol(args: argparse.Namespace) -> str:
    """The timing protocol the flags ask for (see ``--protocol``)."""
    if args.executor == "ray":
        if args.protocol == "interleaved":
            raise UsageError("--executor ray runs one cell per Ray task, so it cannot interleave cells; use "
                             "--protocol sequential (the default there) or the local executor")
        return "sequential"
    protocol = args.protocol or "interleaved"
    if protocol == "interleaved" and args.repeats > 1:
        raise UsageError("--repeats re-measures each cell in fresh processes one after another, which is the "
                         "sequential protocol; pass --protocol sequential with it, or raise --max-time to give "
                         "the interleaved rounds more time")
    return protocol


def _configure_resume(args: argparse.Namespace, argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """``--resume DIR``: the recorded command line (without ``--out``) re-planned; DIR is the folder."""
    from suites.sweep.rundir import RunDirError, recorded_argv
    others, skip = [], False
    for a in argv:
        if skip or a.startswith("--resume=") or a in ("--retry-errors", "--no-progress", "--no-report"):
            skip = False
        elif a == "--resume":
            skip = True
        else:
            others.append(a)
    if others:
        raise UsageError(f"--resume takes no other arguments but --retry-errors, --no-progress and --no-report "
                         f"(got {' '.join(others)}); the sweep is the one recorded in {args.resume}/env.json")
    try:
        recorded = recorded_argv(Path(args.resume))
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    if "--resume" in recorded:
        raise UsageError(f"{args.resume}/env.json records a --resume command line, not a sweep")
    i = recorded.index("--out") if "--out" in recorded else -1
    stripped = recorded[:i] + recorded[i + 2:] if i >= 0 else recorded
    rec_args, plan_kw = configure(stripped)
    rec_args.resume, rec_args.retry_errors = args.resume, args.retry_errors
    rec_args.no_progress |= args.no_progress
    rec_args.no_report |= args.no_report
    return rec_args, plan_kw


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from suites.sweep import plan, rows, rundir
    try:
        args, plan_kw = configure(argv)
        if args.list:
            print(list_everything())
            if args.executor == "ray":
                print(_list_nodes(args))
            return 0
        tasks = plan.interleave(plan.plan(**plan_kw))
        if args.resume:
            run_dir = Path(args.resume)
            tasks = rundir.remaining(tasks, rundir.finished_cells(run_dir, args.retry_errors))
        else:
            run_dir = _new_run_dir(args.out, rows.new_run_id())
        lock = rundir.RunLock(run_dir)
        lock.acquire()
    except (UsageError, rundir.RunDirError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, argv, plan_kw, tasks, run_dir)
    finally:
        lock.release()


def _run(args: argparse.Namespace, argv: list[str], plan_kw: dict[str, Any], tasks: list, run_dir: Path) -> int:
    """Run the planned tasks into ``run_dir`` (new or resumed); env.json records the session."""
    from suites.cli.console import drift_lines, summary_table
    from suites.core import registry
    from suites.core.cell import Context
    from suites.core.devices import visible_devices
    from suites.sweep import envfile, rows, rundir
    from suites.sweep.run import run_sweep
    from suites.sweep.writer import ResultWriter
    devices = sorted(({c.device for t in tasks for c in t.cells} | set(plan_kw["devices"])) & set(visible_devices()))
    n_cells = sum(len(t.cells) for t in tasks)
    run_id = run_dir.name if args.out is None and not args.resume else rows.new_run_id()
    env = envfile.start_session(run_dir, devices, plan_kw["threads"], [PROG] + argv, run_id,
                                resume=bool(args.resume), planned_cells=n_cells)
    writer = ResultWriter(run_dir, env["run_id"])
    executor = _executor(args)
    ctx = Context(run_dir=run_dir.resolve(), progress=not args.no_progress)
    code, reason = 0, "completed"
    try:
        with rundir.signals_interrupt():
            run_sweep(tasks, executor, writer, ctx, progress=not args.no_progress)
    except KeyboardInterrupt as exc:
        executor.close()
        code = exc.exit_code if isinstance(exc, rundir.Interrupted) else 130
        print(f"\ninterrupted: {len(writer.rows)} of {n_cells} cells measured; finish with --resume {run_dir}",
              file=sys.stderr)
        reason = "interrupted"
    finally:
        try:
            env["hosts"].update(executor.environments(plan_kw["threads"]))   # the other machines that measured
        except Exception as exc:  # noqa: BLE001  (never lose the rows for the environment's sake)
            print(f"warning: host environments not gathered ({type(exc).__name__}: {exc})", file=sys.stderr)
        executor.close()
    writer.consolidate()
    errors = sum(r["status"] == "error" for r in writer.rows)
    if code == 0 and errors:
        code, reason = 1, "failed"
    drift = rows.drift_summary(writer.rows)
    envfile.end_session(run_dir, env, reason, measured_cells=len(writer.rows), drift=drift)
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
    if not args.no_report:
        _render_report(run_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
