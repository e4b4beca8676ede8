"""One side of the A/B gate: ``python suites/gate/worker.py CASES.py``, its tree first on PYTHONPATH.

Reads JSON lines on stdin: ``{"setup": name}`` builds a case, ``{"round": name, "calls": n}`` times n
calls and answers the seconds per call, ``{"where": true}`` answers where ``lsnet`` was imported
from. One intra-op thread; answers are JSON lines on stdout.
"""
from __future__ import annotations

import gc
import importlib.util
import json
import sys
import time
from pathlib import Path


def _own_tree_only() -> None:
    """Drop the editable-install finder, so a module missing from this tree is not taken from another."""
    sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in getattr(f, "__name__", type(f).__name__)]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the timed loop runs with frame-stack headroom (suites/core/stackroom.py of this file's tree, so both
# sides run the same loop whatever their trees hold): its depth cannot make the calls thrash stack chunks
_headroom = _load("gate_stackroom", Path(__file__).resolve().parents[1] / "core" / "stackroom.py").with_headroom


@_headroom
def _seconds_per_call(fn, n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    finally:
        gc.enable()


def main(cases_path: str) -> int:
    _own_tree_only()
    import torch
    torch.set_num_threads(1)
    cases = _load("gate_cases", Path(cases_path))
    ready: dict[str, object] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if "setup" in msg:
                fn = cases.CASES[msg["setup"]]()
                fn()
                fn()
                ready[msg["setup"]] = fn
                answer: dict[str, object] = {"ok": True}
            elif "round" in msg:
                answer = {"ok": True, "seconds": _seconds_per_call(ready[msg["round"]], int(msg["calls"]))}
            else:
                import lsnet
                answer = {"ok": True, "lsnet": lsnet.__file__}
        except Exception as exc:  # noqa: BLE001  (a case the tree cannot run: reported, not fatal)
            answer = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
