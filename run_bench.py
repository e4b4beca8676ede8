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
import sys
from pathlib import Path
from typing import Any, NoReturn

from schema import DTYPES

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
    import engines
    from executors.local import ISOLATIONS
    from suites import registry
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
    p.add_argument("--out", default=None, help="run folder (default: a new timestamped folder under results/)")
    p.add_argument("--isolation", default="auto", choices=ISOLATIONS,
                   help="where cells run: auto = a worker process for memory cells and CUDA cells, others in-process; "
                        "process = every cell in its own worker; inline = all in this process")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds before a cell is stopped (cells then run in worker processes)")
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
    from suites import registry
    valid = registry.names()
    names = _csv(spec)
    if "all" in names:
        return valid
    return _choose(names, valid + ["all"], "suite")


def resolve_engines(spec: str | None, compile_alias: bool) -> list[str]:
    import engines
    chosen = _choose(_csv(spec), engines.ENGINES, "engine") if spec is not None else ([] if compile_alias else ["eager"])
    return chosen + (["compile"] if compile_alias and "compile" not in chosen else [])


def resolve_models(spec: str) -> list[str]:
    from suites import zoo
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
    from suites.devices import DeviceError, parse_devices, visible_devices
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
                                    ("--cell-timeout", args.cell_timeout, False)):
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number of seconds, got {value}")
        if value < 0 or (value == 0 and not allow_zero):
            raise UsageError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _suite_options(args: argparse.Namespace, suites: list[str]) -> dict[str, Any]:
    """Each chosen suite's options from the flags; a warning for options no chosen suite reads."""
    from suites import registry
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


def list_everything() -> str:
    import engines
    from suites import registry, zoo
    from suites.devices import device_name, visible_devices
    lines = ["models (name  family):"] + [f"  {n}  {zoo.spec(n).family}" for n in zoo.names("all")]
    lines += [f"model groups: {', '.join(MODEL_GROUPS)}", "suites:"]
    lines += [f"  {n}  {registry.get(n).description}" for n in registry.names()]
    lines += ["engines:"] + [f"  {name}  {'available' if why is None else 'unavailable: ' + why}"
                             for name, why in engines.availability().items()]
    lines += [f"dtypes: {', '.join(DTYPES)}", "visible devices:"]
    lines += [f"  {d}  {device_name(d)}" for d in visible_devices()]
    return "\n".join(lines)


def _new_run_dir(out: str | None, run_id: str) -> Path:
    if out:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {out} is a file; give a folder")
        if (path / "results.csv").exists() or (path / "results.jsonl").exists():
            raise UsageError(f"--out {out} already holds results; choose a new folder "
                             f"(earlier rows are never overwritten)")
        return path
    return Path("results") / run_id


def _render_report(run_dir: Path) -> None:
    try:
        from reports import render
        print(f"report: {render(run_dir)}")
    except Exception as exc:  # noqa: BLE001  (a report failure must not lose results)
        print(f"warning: report not rendered ({type(exc).__name__}: {exc}); results are in {run_dir}", file=sys.stderr)


def configure(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse and validate ``argv``; the namespace and the keyword arguments of :func:`suites.sweep.plan`."""
    args = build_parser().parse_args(argv)
    if args.list:
        return args, {}
    _check_numbers(args)
    suites = resolve_suites(args.suite)
    if "accuracy" in suites and args.data is None and args.dataset is None and "all" in _csv(args.suite):
        suites.remove("accuracy")   # all = every suite that has what it needs
    options = _suite_options(args, suites)
    engines_ = resolve_engines(args.engine, args.compile)
    dtypes = _choose(_csv(args.dtype), DTYPES, "dtype")
    devices = resolve_devices(args.device)
    models = resolve_models(args.models)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    from suites.devices import is_cuda
    if args.cuda_graphs and not any(is_cuda(d) for d in devices):
        raise UsageError(f"--cuda-graphs needs a CUDA device; chosen devices: {', '.join(devices)}")
    from engines.compile import COMPILE_MODES
    if args.compile_mode is not None and args.compile_mode not in COMPILE_MODES:
        raise UsageError(f"unknown --compile-mode {args.compile_mode!r}; choose from {', '.join(COMPILE_MODES)}")
    import torch
    plan_kw = dict(suites=suites, models=models, devices=devices, dtypes=dtypes, engines_=engines_,
                   batch_sizes=batch_sizes, max_batch=args.max_batch, options=options,
                   channels_last=args.channels_last, cuda_graphs=args.cuda_graphs, compile_mode=args.compile_mode,
                   fused=not args.no_fuse, resolution=args.resolution, threads=args.threads or torch.get_num_threads(),
                   warmup=args.warmup, min_time=args.min_time, min_samples=args.min_samples)
    return args, plan_kw


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, plan_kw = configure(argv)
        if args.list:
            print(list_everything())
            return 0
        from suites import results
        run_id = results.new_run_id()
        run_dir = _new_run_dir(args.out, run_id)
        from suites import sweep
        tasks = sweep.plan(**plan_kw)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    import executors
    from suites import registry
    from suites.cell import Context
    writer = results.ResultWriter(run_dir, run_id)
    n_cells = sum(len(t.cells) for t in tasks)
    env = results.environment(sorted({c.device for t in tasks for c in t.cells} | set(plan_kw["devices"])),
                              plan_kw["threads"], [PROG] + argv, results.now_iso())
    env["run_id"], env["planned_cells"] = run_id, n_cells
    results.write_env(run_dir, env)
    executor = executors.get("local", isolation=args.isolation, timeout=args.cell_timeout)
    ctx = Context(run_dir=run_dir.resolve(), progress=not args.no_progress)
    code, reason = 0, "completed"
    try:
        sweep.run_sweep(tasks, executor, writer, ctx, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(writer.rows)} of {n_cells} cells measured", file=sys.stderr)
        code, reason = 130, "interrupted"
    finally:
        executor.close()
    writer.consolidate()
    errors = sum(r["status"] == "error" for r in writer.rows)
    if code == 0 and errors:
        code, reason = 1, "failed"
    env["end_time"] = env["sessions"][-1]["end_time"] = results.now_iso()
    env["sessions"][-1]["end_reason"] = reason
    env["measured_cells"] = len(writer.rows)
    results.write_env(run_dir, env)
    print(results.summary_table(writer.rows))
    for name in dict.fromkeys(r["suite"] for r in writer.rows):
        summarize = registry.get(name).console_summary
        if summarize is not None:
            lines = summarize([r for r in writer.rows if r["suite"] == name])
            if lines:
                print(lines)
    print(f"results: {run_dir}")
    if errors:
        print(f"{errors} of {len(writer.rows)} cells ended in error (see the error column)", file=sys.stderr)
    if code != 130 and not args.no_report:
        _render_report(run_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
