"""A toy suite for the Ray executor tests: sleeps, optionally waits for a release file, writes an
artifact under the run folder and runs out of memory from a batch size on; its "latency" is the
batch size, so rows are deterministic."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suites.core.cell import Cell, Context
from suites.core.registry import Suite, register


@dataclass(frozen=True)
class Options:
    toy_sleep: float = field(default=0.0, metadata={"help": "raytoy: seconds each cell sleeps"})
    toy_hold: str = field(default="", metadata={"help": "raytoy: folder; a cell marks its start there and waits "
                                                        "for a file named release (30 s at most)"})
    toy_oom_at: int = field(default=0, metadata={"help": "raytoy: batch size from which cells run out of memory"})


def _node_id() -> str:
    try:
        import ray
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:  # noqa: BLE001
        return ""


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    opts, node, start = cell.opts, _node_id(), time.time()
    if opts.toy_oom_at and cell.batch_size >= opts.toy_oom_at:
        raise MemoryError(f"out of memory at batch {cell.batch_size}")
    if opts.toy_hold:
        hold = Path(opts.toy_hold)
        (hold / f"started-{node}-{os.getpid()}").write_text(cell.model)
        while not (hold / "release").exists() and time.time() - start < 30:
            time.sleep(0.05)
        (hold / f"finished-{node}-{os.getpid()}").write_text(cell.model)
    time.sleep(opts.toy_sleep)
    extra: dict[str, Any] = {"node_id": node}
    if ctx.run_dir is not None:
        path = ctx.run_dir / "toy" / f"{cell.model}-bs{cell.batch_size}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{cell.model} {cell.batch_size}")
        extra["file"] = str(path)
    return {"latency_ms_p50": float(cell.batch_size), "extra": extra}


SUITE = register(Suite("raytoy", run, __name__, "a toy for the Ray executor tests", options=Options))
