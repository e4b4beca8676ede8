"""The run flags checked and resolved, before any cell runs: suites, engines, models, devices, batch sizes,
numbers and protocol into the keyword arguments of the plan, and the settings it runs with."""
from __future__ import annotations

import argparse
import math
import re
import os
import sys
from typing import Any

from suites.cli.run import RunSettings
from suites.cli.usage import UsageError, csv_list
from suites.core.schema import DTYPES, RESOLUTION_FORMS, TASKS, parse_resolution

MODEL_GROUPS = ("default", "lsnet", "baselines", "all")


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
    names = csv_list(spec)
    if "all" in names:
        return valid
    return _choose(names, valid + ["all"], "suite")


def resolve_engines(spec: str | None, compile_alias: bool) -> list[str]:
    from suites import engines
    chosen = _choose(csv_list(spec), engines.ENGINES, "engine") if spec is not None else ([] if compile_alias else ["eager"])
    return chosen + (["compile"] if compile_alias and "compile" not in chosen else [])


def resolve_models(spec: str, resolution: int | tuple[int, int] = 224) -> list[str]:
    from suites.core import zoo
    out: list[str] = []
    for name in csv_list(spec) or [""]:
        if name == "default":
            chosen = [n for n in ("lsnet_t", "lsnet_s", "lsnet_b") if n in zoo.names("lsnet")] + zoo.names("baselines")
        elif name in ("lsnet", "baselines", "all"):
            chosen = zoo.names(name)
        elif zoo.is_brought(name):
            _check_brought(name, resolution)
            chosen = [name]
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


def _check_brought(name: str, resolution: int | tuple[int, int]) -> None:
    """A model the user brings (``module:callable``, ``timm:NAME``) imports and builds, or UsageError. The
    working folder is importable, here and in worker processes (as with ``python -m``)."""
    from suites.core import zoo
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH")) if p)
    try:
        zoo.create(name, img_size=resolution)
    except Exception as exc:  # noqa: BLE001  (the user's code may raise anything)
        text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ValueError) and text.startswith(f"model {name!r}"):
            raise UsageError(text) from None
        raise UsageError(f"model {name!r}: building it failed ({type(exc).__name__}: {text[:200]}); fix the "
                         "callable or choose another model") from None


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
    for s in csv_list(spec):
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


HOUR, DAY = 3600.0, 86400.0
# flag -> (zero allowed, the largest value): beyond it a cell would run for hours or days, a typo rather
# than an experiment (a sweep runs many cells)
NUMBER_BOUNDS: dict[str, tuple[bool, float]] = {
    "--threads": (False, 1024), "--resolution": (False, 8192), "--max-batch": (False, 1 << 20),
    "--min-samples": (False, 100_000), "--repeats": (False, 100), "--warmup": (True, 10 * 60),
    "--min-time": (True, HOUR), "--max-time": (False, HOUR), "--burst": (False, 60), "--group-time": (False, DAY),
    "--cell-timeout": (False, 7 * DAY), "--parity-tol": (False, 1e3), "--calib-images": (False, 100_000), "--precision": (False, math.inf),   # below 1: checked below with its own message
}


def _check_numbers(args: argparse.Namespace) -> None:
    """Every number flag within its bounds (:data:`NUMBER_BOUNDS`), the bound named in the message."""
    for flag, (allow_zero, upper) in NUMBER_BOUNDS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None or flag == "--resolution":     # text (N or HxW): parse_resolution_flag checks it
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if value < 0 or (value == 0 and not allow_zero):
            raise UsageError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
        if value > upper:
            raise UsageError(f"{flag} {value} is above its bound {upper:g}; give at most {upper:g}")


def parse_resolution_flag(spec: str) -> int | tuple[int, int]:
    """``--resolution``: ``N`` (a square input: an int) or ``HxW`` (height x width: a pair), each side
    within its bound (:data:`NUMBER_BOUNDS`); :class:`UsageError` naming the forms for anything else."""
    upper = NUMBER_BOUNDS["--resolution"][1]
    text = str(spec).strip()
    if re.fullmatch(r"[-+]?\d+", text) and int(text) <= 0:
        raise UsageError(f"--resolution must be > 0, got {int(text)}")
    try:
        h, w = parse_resolution(text)
    except ValueError as exc:
        why = "height and width must be > 0; " if "must be > 0" in str(exc) else ""
        raise UsageError(f"--resolution {text!r}: {why}give {RESOLUTION_FORMS}, e.g. 224, 512 or 800x1333 "
                         "(one resolution per run)") from None
    if max(h, w) > upper:
        raise UsageError(f"--resolution {text} is above its bound {upper:g}; give at most {upper:g} per side")
    return h if h == w else (h, w)


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


def _runnable(args: argparse.Namespace, suites: list[str]) -> list[str]:
    """``--suite all``: every suite whose options are valid with the given flags (one that lacks what it
    needs, e.g. accuracy without --data or --dataset, is left out)."""
    from suites.core import registry
    given = {opt.field: getattr(args, opt.field) for opt in registry.option_flags()}
    out = []
    for name in suites:
        try:
            registry.build_options(registry.get(name), given)
        except (TypeError, ValueError):
            continue
        out.append(name)
    return out


def ignored_flags(args: argparse.Namespace, suites: list[str], engines_: list[str], protocol: str,
                  options: dict[str, Any]) -> list[str]:
    """Why each flag the user set has no effect in the chosen configuration (a warning each, once)."""
    from suites.cli.parser import build_parser
    from suites.core import registry
    defaults = build_parser()

    def given(dest: str) -> bool:
        return getattr(args, dest) != defaults.get_default(dest)
    timed = any(registry.get(s).timed for s in suites)
    rounds = ("--burst", "--max-time", "--group-time", "--precision", "--reference")
    out = []
    if not timed:
        out += [f"{flag} is ignored: no chosen suite is timed ({', '.join(suites)})" for flag in rounds
                if given(flag[2:].replace("-", "_"))]
    elif protocol == "sequential":
        out += [f"{flag} is ignored: it sets the interleaved rounds, and cells are timed one at a time here "
                f"(--protocol sequential)" for flag in rounds if given(flag[2:].replace("-", "_"))]
    if given("compile_mode") and "compile" not in engines_:
        out.append("--compile-mode is ignored: no cell runs through the compile engine (add --engine compile)")
    if args.executor != "ray":
        out += [f"--{dest.replace('_', '-')} is ignored without --executor ray" for dest in ("ray_address", "nodes")
                if given(dest)]
    out += [w for opts in options.values() for w in registry.ignored_options(opts)]
    return list(dict.fromkeys(out))


def _cluster_devices(args: argparse.Namespace) -> list[str]:
    """The device kinds to plan for on Ray (``--device`` forms of :mod:`suites.executors.ray`)."""
    try:
        from suites.executors import ray as ray_executor
        return ray_executor.plan_devices(args.device, args.ray_address, csv_list(args.nodes or ""))
    except (ImportError, ConnectionError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_models_accept(models: list[str], resolution: int | tuple[int, int]) -> None:
    """Models fail below their total stride; small resolutions (either side) are checked with one forward each."""
    h, w = parse_resolution(resolution)
    if min(h, w) >= 64:
        return
    import torch

    from suites.core import zoo
    text = str(h) if h == w else f"{h}x{w}"
    for name in models:
        try:
            with torch.inference_mode():
                zoo.create(name, img_size=resolution).eval()(torch.randn(1, 3, h, w))
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"--resolution {text} is too small for {name} "
                             f"({str(exc).splitlines()[0][:120]}); use --resolution 64 or more") from None


def configure(args: argparse.Namespace) -> tuple[dict[str, Any], RunSettings]:
    """Validate the run flags ``args``; the keyword arguments of :func:`suites.sweep.plan.plan` and the
    settings the plan runs with (:class:`UsageError` for bad input)."""
    _check_numbers(args)
    resolution = parse_resolution_flag(args.resolution)
    tasks = _choose(csv_list(args.task), TASKS, "task")
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
    if "all" in csv_list(args.suite):
        suites = _runnable(args, suites)
    options = _suite_options(args, suites)
    engines_ = resolve_engines(args.engine, args.compile)
    for warning in ignored_flags(args, suites, engines_, protocol, options):
        print(f"warning: {warning}", file=sys.stderr)
    dtypes = _choose(csv_list(args.dtype), DTYPES, "dtype")
    calib_source = _check_int8(args, dtypes, engines_)
    devices = resolve_devices(args.device) if args.executor == "local" else _cluster_devices(args)
    models = resolve_models(args.models, resolution)
    if args.reference is not None and args.reference not in models:
        raise UsageError(f"--reference {args.reference} is not among the measured models; add it to --models or "
                         f"choose one of {', '.join(models[:8])}{', ...' if len(models) > 8 else ''}")
    from suites.interleave import reference_model
    reference = reference_model(models, args.reference)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    _check_models_accept(models, resolution)
    from suites.core.devices import is_cuda
    if args.cuda_graphs and not any(is_cuda(d) for d in devices):
        raise UsageError(f"--cuda-graphs needs a CUDA device; chosen devices: {', '.join(devices)}")
    from suites.engines.compile import COMPILE_MODES
    if args.compile_mode is not None and args.compile_mode not in COMPILE_MODES:
        raise UsageError(f"unknown --compile-mode {args.compile_mode!r}; choose from {', '.join(COMPILE_MODES)}")
    import torch
    threads = args.threads or torch.get_num_threads()
    plan_kw = dict(suites=suites, models=models, devices=devices, dtypes=dtypes, engines_=engines_,
                   batch_sizes=batch_sizes, max_batch=args.max_batch, options=options,
                   channels_last=args.channels_last, cuda_graphs=args.cuda_graphs, compile_mode=args.compile_mode,
                   fused=not args.no_fuse, resolution=resolution, tasks_=tasks, threads=threads,
                   warmup=args.warmup, min_time=args.min_time, min_samples=args.min_samples,
                   repeats=args.repeats, pin_cores=args.pin_cores, parity_tol=args.parity_tol, protocol=protocol,
                   reference=reference, burst=args.burst, max_time=args.max_time, precision=args.precision,
                   group_time=args.group_time, calib_images=args.calib_images, calib_source=calib_source)
    settings = RunSettings(executor=args.executor, isolation=args.isolation, cell_timeout=args.cell_timeout,
                           ray_address=args.ray_address, nodes=csv_list(args.nodes or ""), device=args.device,
                           devices=devices, threads=threads, reference=reference)
    return plan_kw, settings


def _check_int8(args: argparse.Namespace, dtypes: list[str], engines_: list[str]) -> str:
    """``--dtype int8`` needs an engine that quantises; the cells' calibration source (see
    :func:`suites.engines.quantize.resolve_source`); a warning for calibration flags without int8."""
    from suites import engines
    from suites.engines import quantize
    if "int8" not in dtypes:
        for flag, dest, default in (("--calib-images", "calib_images", quantize.DEFAULT_CALIB_IMAGES),
                                    ("--calib-source", "calib_source", "auto")):
            if getattr(args, dest, default) != default:
                print(f"warning: {flag} is ignored: it calibrates --dtype int8, which is not asked for", file=sys.stderr)
        return "proxy"      # the cells' default: float cells never read it
    quantizers = engines.quantizers()
    if not set(engines_) & set(quantizers):
        raise UsageError(f"--dtype int8 is post-training quantisation in {' and '.join(quantizers)}; engine(s) "
                         f"{', '.join(engines_)} do not quantise: add --engine {','.join(quantizers)}")
    try:
        return quantize.resolve_source(getattr(args, "calib_source", "auto"), getattr(args, "data", None))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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
