"""``--device`` on Ray: which device kinds a sweep plans for, and whether each cell runs once (a pool)
or on every device of its kind."""
from __future__ import annotations

from collections.abc import Iterable

from suites.core.devices import DeviceError
from suites.executors.ray.connection import connect
from suites.executors.ray.nodes import Node, cluster_nodes


def parse_cluster_devices(spec: str | None, nodes: list[Node]) -> dict[str, str]:
    """``--device`` on Ray: each device kind to ``pool`` (each cell once) or ``each`` (on every
    device of that kind). ``None``: a GPU pool when a chosen node has a GPU, else a CPU pool."""
    has_gpu = any(n.gpus for n in nodes)
    if not nodes:
        raise DeviceError("no Ray node is chosen")
    if spec is None:
        return {"cuda" if has_gpu else "cpu": "pool"}
    modes: dict[str, str] = {}
    for token in (s.strip() for s in spec.split(",")):
        if not token:
            continue
        if token == "all":
            modes.update({"cpu": "each", **({"cuda": "each"} if has_gpu else {})})
        elif token in ("all:cpu", "all:cuda"):
            modes[token[4:]] = "each"
        elif token in ("cpu", "cuda"):
            modes.setdefault(token, "pool")
        else:
            raise DeviceError(f"device {token!r} is not a Ray device form; choose cpu, cuda (a pool: each cell "
                              "once, wherever free), all, all:cpu, all:cuda (each cell on every device); pick "
                              "machines with --nodes")
    if "cuda" in modes and not has_gpu:
        raise DeviceError(f"no chosen node has a GPU; nodes: {', '.join(n.name for n in nodes)}")
    if not modes:
        raise DeviceError("no device given; choose cpu, cuda, all, all:cpu or all:cuda")
    return modes


def plan_devices(spec: str | None, address: str | None = None, nodes: Iterable[str] | None = None) -> list[str]:
    """The device kinds to plan cells for (``cpu``, ``cuda``), checked against the cluster."""
    connect(address)
    return list(parse_cluster_devices(spec, cluster_nodes(nodes)))
