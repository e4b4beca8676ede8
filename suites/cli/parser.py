"""The flags of ``lsnet-bench run``: a sweep of the registered suites (their options become flags) through
the engines and an executor into a run folder."""
from __future__ import annotations

import argparse

from suites.cli.usage import PROG, OneLineParser
from suites.core.cell import PROTOCOLS
from suites.core.schema import DTYPES, TASKS

DESCRIPTION = "Measure LSNet and the baselines (latency, throughput, memory, FLOPs, accuracy, profile, ops, train)."

def build_parser() -> argparse.ArgumentParser:
    """The flags of ``lsnet-bench run``: the sweep's, each registered suite's options and the run folder's."""
    from suites import engines
    from suites import executors
    from suites.executors.local import ISOLATIONS
    from suites.core import registry
    p = OneLineParser(prog=f"{PROG} run", description=DESCRIPTION,
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
                                                       "(amp = autocast: float16 on CUDA, bfloat16 on CPU; int8 = "
                                                       "static post-training quantisation, engines onnxruntime "
                                                       "and openvino on CPUs, see --calib-images)")
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
    p.add_argument("--resolution", default="224",
                   help="input size in pixels: one number for a square input (224, 512) or HxW, height x width "
                        "(800x1333); rows record it as given (224 or 800x1333)")
    p.add_argument("--task", default="classify",
                   help=f"comma-separated tasks: {', '.join(TASKS)} (features = the backbone alone, its multi-scale "
                        "feature maps; segment = backbone + Semantic FPN, 150-class per-pixel logits)")
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
                        "float32, 5e-2 for 16-bit, 1.0 for int8, which is also judged by top-1 agreement); above it "
                        "the row is an error")
    p.add_argument("--calib-images", type=int, default=300, metavar="N",
                   help="--dtype int8: images the post-training quantisation is calibrated on (ONNX Runtime's QDQ "
                        "quantiser, OpenVINO's NNCF); the quantised file is kept under the run folder's artifacts/")
    p.add_argument("--calib-source", default="auto", choices=("auto", "imagefolder", "proxy", "random"),
                   help="--dtype int8: where the calibration images come from: imagefolder = --data DIR (the "
                        "accuracy suite's preprocessing), proxy = the proxy task's image generator, random = "
                        "seeded noise; auto = imagefolder with --data, else proxy")
    p.add_argument("--pin-cores", default=None, metavar="CORES",
                   help="run every cell on these CPU cores only, e.g. 0-1 (os.sched_setaffinity)")
    p.add_argument("--out", default=None, help="run folder (default: a new timestamped folder under results/); "
                                               "a folder that already holds results is refused (see --resume)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="finish the sweep recorded in DIR (its plan.json): run only the cells without a final row "
                        "(no other arguments needed; finished rows are never rewritten); = lsnet-bench resume DIR")
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
