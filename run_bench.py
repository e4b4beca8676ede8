"""lsnet-bench: measure LSNet and the baselines (latency, throughput, memory, FLOPs, accuracy, profile).

A thin CLI: parse and validate the arguments, plan the sweep of cells, run it through ``suites``,
write results.csv / results.json / env.json into the run folder, print a summary table and hand
the folder to ``reports.render`` when available. Bad input exits with code 2 and one line.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any, NoReturn

SUITE_CHOICES = ("latency", "throughput", "memory", "flops", "accuracy", "profile")
DTYPE_CHOICES = ("float32", "float16", "bfloat16", "amp")
MODEL_GROUPS = ("default", "lsnet", "baselines", "all")
DATASETS = ("imagefolder", "proxy", "published")
PROG = "lsnet-bench"


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suite", default="latency",
                   help=f"comma-separated suites: {', '.join(SUITE_CHOICES)} or all (all = every suite; accuracy only "
                        "when --data or --dataset is given)")
    p.add_argument("--device", default=None,
                   help="comma-separated devices: cpu, cuda (= cuda:0), cuda:N, all (every visible device); "
                        "default: cuda:0 when a GPU is visible, else cpu")
    p.add_argument("--models", default="default",
                   help="comma-separated model names or a group: default (lsnet_t, lsnet_s, lsnet_b and every baseline), "
                        "lsnet (all LSNet variants incl. distilled), baselines, all, or a family name; see --list")
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated batch sizes; default: latency/profile 1, memory 1,8,32, accuracy 64, "
                        "throughput powers of two up to --max-batch, stopping at the first out-of-memory batch")
    p.add_argument("--max-batch", type=int, default=None,
                   help="largest batch of throughput's default sweep (default 256 on CPU, 4096 on CUDA)")
    p.add_argument("--dtype", default="float32", help=f"comma-separated precisions: {', '.join(DTYPE_CHOICES)} "
                                                       "(amp = autocast: float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--channels-last", action="store_true", help="run models and inputs in channels_last layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compilation is never timed)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default, reduce-overhead, max-autotune)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="capture the forward in a CUDA graph and time graph replays (CUDA devices only)")
    p.add_argument("--no-fuse", action="store_true",
                   help="do not fold BN / RepVGG branches (default: fused for inference, the official protocol)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (torch.set_num_threads); default: torch's current count, recorded in every row")
    p.add_argument("--resolution", type=int, default=224, help="input height and width in pixels")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before timing (the first call is never timed)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed samples per cell (at least)")
    p.add_argument("--min-samples", type=int, default=30, help="timed samples per latency cell (at least)")
    p.add_argument("--out", default=None, help="run folder (default: a new timestamped folder under results/)")
    p.add_argument("--isolation", default="auto", choices=("auto", "inline", "process"),
                   help="where cells run: auto = a worker process for memory cells and CUDA cells, others in-process; "
                        "process = every cell in its own worker; inline = all in this process")
    p.add_argument("--cell-timeout", type=float, default=None, help="seconds before a worker-process cell is killed")
    p.add_argument("--data", default=None, help="accuracy: dataset folder")
    p.add_argument("--checkpoint", default=None, help="accuracy: checkpoint path (.pth or .safetensors)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier classes (default 1000)")
    p.add_argument("--dataset", default=None, choices=DATASETS, help="accuracy: dataset kind")
    p.add_argument("--proxy-steps", type=int, default=None, help="accuracy proxy: training steps (default 150)")
    p.add_argument("--proxy-seed", type=int, default=None, help="accuracy proxy: data and init seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not render report.html at the end")
    p.add_argument("--list", action="store_true", help="list models, suites and visible devices, then exit")
    return p


def accuracy_available() -> bool:
    return importlib.util.find_spec("suites.accuracy") is not None


def _choose(values: list[str], valid: tuple[str, ...] | list[str], what: str) -> list[str]:
    for v in values:
        if v not in valid:
            raise UsageError(f"unknown {what} {v!r}; choose from {', '.join(valid)}")
    if not values:
        raise UsageError(f"no {what} given; choose from {', '.join(valid)}")
    return list(dict.fromkeys(values))


def resolve_suites(spec: str) -> list[str]:
    valid = [s for s in SUITE_CHOICES if s != "accuracy" or accuracy_available()]
    names = _csv(spec)
    if "all" in names:
        return valid
    if "accuracy" in names and not accuracy_available():
        raise UsageError("suite 'accuracy' is not available (suites/accuracy.py is missing); choose from "
                         + ", ".join(valid + ["all"]))
    return _choose(names, valid + ["all"], "suite")


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


def _check_positive(args: argparse.Namespace) -> None:
    for flag, value, allow_zero in (("--threads", args.threads, False), ("--resolution", args.resolution, False),
                                    ("--max-batch", args.max_batch, False), ("--min-samples", args.min_samples, False),
                                    ("--warmup", args.warmup, True), ("--min-time", args.min_time, True),
                                    ("--num-classes", args.num_classes, False), ("--cell-timeout", args.cell_timeout, False),
                                    ("--proxy-steps", args.proxy_steps, False)):
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise UsageError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def list_everything() -> str:
    from suites import zoo
    from suites.devices import device_name, visible_devices
    lines = ["models (name  family):"] + [f"  {n}  {zoo.spec(n).family}" for n in zoo.names("all")]
    lines += [f"model groups: {', '.join(MODEL_GROUPS)}",
              "suites: " + ", ".join([s for s in SUITE_CHOICES if s != "accuracy" or accuracy_available()] + ["all"]),
              f"dtypes: {', '.join(DTYPE_CHOICES)}", "visible devices:"]
    lines += [f"  {d}  {device_name(d)}" for d in visible_devices()]
    return "\n".join(lines)


def _new_run_dir(out: str | None, run_id: str) -> Path:
    if out:
        return Path(out)
    base = Path("results") / run_id
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def _render_report(run_dir: Path) -> None:
    try:
        import reports
        render = getattr(reports, "render", None)
        if callable(render):
            print(f"report: {render(run_dir)}")
    except Exception as exc:  # noqa: BLE001  (a report failure must not lose results)
        print(f"warning: report not rendered ({type(exc).__name__}: {exc}); results are in {run_dir}", file=sys.stderr)


def configure(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse and validate ``argv``; the namespace and the keyword arguments of :func:`suites.sweep.plan`."""
    args = build_parser().parse_args(argv)
    if args.list:
        return args, {}
    _check_positive(args)
    suites = resolve_suites(args.suite)
    if "accuracy" in suites and not (args.data or args.dataset):
        if "all" in _csv(args.suite):
            suites.remove("accuracy")   # all = every suite that has what it needs
        else:
            raise UsageError("suite 'accuracy' needs --data DIR (with --checkpoint PATH) or --dataset proxy|published")
    dtypes = _choose(_csv(args.dtype), DTYPE_CHOICES, "dtype")
    devices = resolve_devices(args.device)
    models = resolve_models(args.models)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    if args.cuda_graphs and not any(d.startswith("cuda") for d in devices):
        raise UsageError(f"--cuda-graphs needs a CUDA device; chosen devices: {', '.join(devices)}")
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    options = {k: v for k, v in (("data", args.data), ("checkpoint", args.checkpoint),
                                 ("num_classes", args.num_classes), ("dataset", args.dataset),
                                 ("compile_mode", args.compile_mode), ("proxy_steps", args.proxy_steps),
                                 ("proxy_seed", args.proxy_seed)) if v is not None}
    options["progress"] = not args.no_progress
    plan_kw = dict(suites=suites, models=models, devices=devices, dtypes=dtypes, batch_sizes=batch_sizes,
                   max_batch=args.max_batch, channels_last=args.channels_last, compile=args.compile,
                   cuda_graphs=args.cuda_graphs, fused=not args.no_fuse, resolution=args.resolution,
                   threads=torch.get_num_threads(), warmup=args.warmup, min_time=args.min_time,
                   min_samples=args.min_samples, options=options)
    return args, plan_kw


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, plan_kw = configure(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print(list_everything())
        return 0
    from suites import results, sweep
    run_id = results.new_run_id()
    run_dir = _new_run_dir(args.out, run_id)
    plan_kw["options"] = {**plan_kw["options"], "run_dir": str(run_dir.resolve())}
    cells = sweep.plan(**plan_kw)
    writer = results.ResultWriter(run_dir, run_id)
    env = results.environment(sorted({c.device for c in cells} | set(plan_kw["devices"])), plan_kw["threads"],
                              [PROG] + argv, results.now_iso())
    env["planned_cells"] = len(cells)
    results.write_env(run_dir, env)
    code = 0
    try:
        sweep.run_sweep(cells, writer, isolation=args.isolation, timeout=args.cell_timeout,
                        progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(writer.rows)} of {len(cells)} cells measured", file=sys.stderr)
        code = 130
    env["end_time"] = results.now_iso()
    env["measured_cells"] = len(writer.rows)
    results.write_env(run_dir, env)
    print(results.summary_table(writer.rows))
    print(f"results: {run_dir}")
    if code == 0 and not args.no_report:
        _render_report(run_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
