"""How much CPU other processes took while a cell ran, from ``/proc/stat`` (and the hypervisor's
steal time where the kernel reports it), so rows measured on a busy machine say so."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OTHER_LIMIT = 0.2    # other processes used more than this share of the usable CPU time: significant
STEAL_LIMIT = 0.05   # the hypervisor took more than this share: significant


def read_proc_stat(text: str | None = None) -> tuple[float, float, float] | None:
    """(busy, steal, total) CPU seconds of the whole machine from ``/proc/stat``'s ``cpu`` line, or None."""
    if text is None:
        try:
            text = Path("/proc/stat").read_text()
        except OSError:
            return None
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            v += [0] * (8 - len(v))
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            busy = user + nice + system + irq + softirq
            return busy / hz, steal / hz, (busy + idle + iowait + steal) / hz
    return None


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class CpuContention:
    """Start it before a cell and call :meth:`stop` after: the shares of CPU time taken by other
    processes and by the hypervisor (steal) over the cell's wall time and this process's usable CPUs."""
    reader: Callable[[], tuple[float, float, float] | None] = read_proc_stat
    own: Callable[[], float] = _own_cpu_seconds
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._start = (self.reader(), self.own(), self.clock())

    def stop(self) -> dict[str, float | None]:
        (stat0, own0, t0), stat1, own1, t1 = self._start, self.reader(), self.own(), self.clock()
        if stat0 is None or stat1 is None or t1 <= t0:
            return {"other_cpu_share": None, "steal_share": None}
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy, steal, total = (b - a for a, b in zip(stat0, stat1))
        other = max(0.0, busy - (own1 - own0)) / ((t1 - t0) * cpus)
        return {"other_cpu_share": min(1.0, other), "steal_share": steal / total if total > 0 else 0.0}


def contention_note(shares: dict[str, float | None]) -> str | None:
    """A warning when other processes or the hypervisor took a significant share, else None."""
    notes = []
    if (shares.get("other_cpu_share") or 0) > OTHER_LIMIT:
        notes.append(f"other processes used {100 * shares['other_cpu_share']:.0f}% of the usable CPU time")
    if (shares.get("steal_share") or 0) > STEAL_LIMIT:
        notes.append(f"the hypervisor stole {100 * shares['steal_share']:.0f}% of the CPU time")
    return "; ".join(notes) + " during the cell" if notes else None
