"""Facts of a host that explain its speed (CPU ISA flags, frequency governor, oneDNN/MKL/OpenMP,
environment variables, affinity, load; versions, devices, memory, the git revision), warnings a CPU cell
deserves, and pinning to cores."""
from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve")
_REPO_ROOT = Path(__file__).resolve().parents[2]
SPEED_ENV = re.compile(r"^(OMP_|KMP_|GOMP_|MKL_|DNNL_|ONEDNN_|TORCH_|OPENBLAS_|LD_PRELOAD$|CUDA_VISIBLE_DEVICES$)")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s ``flags`` or ``Features`` line)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def host_facts() -> dict[str, Any]:
    """ISA flags of interest, governor, torch's oneDNN/MKL/OpenMP facts, speed-relevant environment
    variables, CPU affinity and load average."""
    import torch
    flags = cpu_flags()
    config = torch.__config__.show()
    onednn = re.search(r"oneDNN v([\w.]+)|MKL-DNN v([\w.]+)", config)
    mkl = re.search(r"Intel\(R\) oneAPI Math Kernel Library Version ([\w.]+)|MKL version ([\w.]+)", config)
    return {
        "isa": sorted(f for f in ISA_FLAGS if f in flags),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "onednn": next((g for g in onednn.groups() if g), None) if onednn else None,
        "mkl": next((g for g in mkl.groups() if g), None) if mkl else None,
        "parallel": torch.__config__.parallel_info().strip().splitlines(),
        "env": {k: v for k, v in sorted(os.environ.items()) if SPEED_ENV.match(k)},
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_warnings(threads: int, dtype: str, device: str, flags: set[str] | None = None,
                 cores: int | None = None) -> list[str]:
    """Warnings for a CPU cell: more threads than usable cores, 16-bit without the CPU's 16-bit units."""
    if device != "cpu":
        return []
    flags = cpu_flags() if flags is None else flags
    cores = usable_cores() if cores is None else cores
    out = []
    if threads > cores:
        out.append(f"oversubscribed: {threads} threads on {cores} usable cores")
    if dtype == "float16" and not flags & {"avx512_fp16", "amx_fp16"}:
        out.append("float16 on a CPU without float16 arithmetic (no avx512_fp16/amx_fp16): converted, slow")
    if dtype in ("bfloat16", "amp") and flags and not flags & {"avx512_bf16", "amx_bf16"}:
        out.append("bfloat16 on a CPU without bfloat16 arithmetic (no avx512_bf16/amx_bf16): emulated, slow")
    return out


def parse_cores(spec: str) -> list[int]:
    """``"0,2-3"`` -> [0, 2, 3]; ValueError naming the problem."""
    cores: list[int] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"--pin-cores {spec!r}: {part!r} is not a core number or range such as 0-3")
        cores += list(range(int(lo), int(hi or lo) + 1))
    if not cores:
        raise ValueError(f"--pin-cores {spec!r}: no cores given")
    return cores


@contextlib.contextmanager
def pinned(cores: list[int] | None) -> Iterator[None]:
    """Run on ``cores`` only (``os.sched_setaffinity``), restoring the previous affinity afterwards."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def host_environment(devices: list[str], threads: int) -> dict[str, Any]:
    """The facts of this host: versions, devices (with NVML facts), CPU, memory, threads."""
    import psutil
    import torch

    from suites.core.devices import cpu_model, device_name, is_cuda
    from suites.core.telemetry import driver_version, gpu_info
    try:
        import triton
        triton_version = triton.__version__
    except Exception:
        triton_version = None
    dev_info = []
    for d in devices:
        entry: dict[str, Any] = {"device": d, "name": device_name(d)}
        if is_cuda(d):
            idx = torch.device(d).index or 0
            props = torch.cuda.get_device_properties(idx)
            entry.update(capability=f"{props.major}.{props.minor}", total_memory_mb=props.total_memory / 2**20,
                         nvml=gpu_info(idx))
        dev_info.append(entry)
    return {
        "host": socket.gethostname(), "python": sys.version.split()[0], "platform": platform.platform(),
        **host_facts(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton_version, "nvidia_driver": driver_version(), "devices": dev_info,
        "cpu_model": cpu_model(), "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True), "threads": threads,
        "memory_total_mb": psutil.virtual_memory().total / 2**20,
    }
