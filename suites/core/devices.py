"""Devices: parse and validate ``--device`` specs, list what is visible, name and synchronise devices."""
from __future__ import annotations

import functools
import platform
import re

import torch

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


class DeviceError(ValueError):
    """A requested device is malformed or not visible on this machine."""


def visible_devices() -> list[str]:
    """Every device this process can run on: ``cpu`` then ``cuda:0`` .. ``cuda:N-1``."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{i}" for i in range(n)]


def parse_devices(spec: str) -> list[str]:
    """Canonical device names for a comma-separated spec (``cpu``, ``cuda``, ``cuda:N``, ``all``).

    ``cuda`` means ``cuda:0``. Raises :class:`DeviceError` naming the problem and the visible devices.
    """
    visible = visible_devices()
    out: list[str] = []
    for raw in (s.strip() for s in spec.split(",")):
        if not raw:
            continue
        if raw == "all":
            chosen = visible
        elif raw == "cpu":
            chosen = ["cpu"]
        elif m := _CUDA_RE.match(raw):
            name = f"cuda:{m.group(1) or 0}"
            if name not in visible:
                why = "no CUDA device is visible" if len(visible) == 1 else f"{len(visible) - 1} CUDA device(s) visible"
                raise DeviceError(f"device {raw!r} is not available ({why}); visible devices: {', '.join(visible)}")
            chosen = [name]
        else:
            raise DeviceError(f"unknown device {raw!r}; choose cpu, cuda, cuda:N or all "
                              f"(visible devices: {', '.join(visible)})")
        out += [d for d in chosen if d not in out]
    if not out:
        raise DeviceError(f"no device given; visible devices: {', '.join(visible)}")
    return out


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """Human name of ``device``: the CPU model or the CUDA device name."""
    if is_cuda(device):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()
