"""The alive nodes of the cluster as the executor names them (``--nodes``, ``--list``)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from suites.core.devices import DeviceError
from suites.executors.ray.connection import require_ray

_STANDARD_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


@dataclass(frozen=True)
class Node:
    """An alive node of the cluster, as the executor names and uses it."""
    node_id: str
    name: str                     # unique among the alive nodes (see :func:`cluster_nodes`)
    ip: str
    hostname: str
    host: str                     # the ``host`` column of its rows: hostname, + name when shared
    cpus: int
    gpus: int
    resources: tuple[str, ...]    # custom resources (labels such as ``machine_a``)

    @property
    def devices(self) -> list[str]:
        return ["cpu"] + [f"cuda:{i}" for i in range(self.gpus)]

    def matches(self, token: str) -> bool:
        """Whether ``--nodes`` token names this node (name, IP, hostname, id prefix or resource)."""
        return (token in (self.name, self.ip, self.hostname, self.host) or token in self.resources
                or (len(token) >= 6 and self.node_id.startswith(token)))


def cluster_nodes(nodes: Iterable[str] | None = None) -> list[Node]:
    """The alive nodes (head first, then by id), kept to those matching ``nodes`` when given.

    A node's name is its Ray node name; nodes sharing one (a local multi-node cluster: every node
    is 127.0.0.1) are named by their custom resources, else by ``name#idprefix``. ``host`` is the
    hostname, plus ``/name`` when several nodes share the hostname. Unknown tokens: DeviceError.
    """
    ray = require_ray()
    raw = [n for n in ray.nodes() if n.get("Alive")]
    raw.sort(key=lambda n: ("node:__internal_head__" not in n.get("Resources", {}), n["NodeID"]))

    def custom(n: dict[str, Any]) -> tuple[str, ...]:
        return tuple(sorted(k for k in n.get("Resources", {}) if k not in _STANDARD_RESOURCES
                            and not k.startswith(("node:", "accelerator_type:"))))

    base = [n.get("NodeName") or n["NodeManagerAddress"] for n in raw]
    names = []
    for n, b in zip(raw, base):
        if base.count(b) == 1:
            names.append(b)
        elif custom(n) and [custom(m) for m in raw].count(custom(n)) == 1:
            names.append("+".join(custom(n)))
        else:
            names.append(f"{b}#{n['NodeID'][:8]}")
    hostnames = [n.get("NodeManagerHostname") or n["NodeManagerAddress"] for n in raw]
    out = [Node(node_id=n["NodeID"], name=name, ip=n["NodeManagerAddress"], hostname=h,
                host=h if hostnames.count(h) == 1 else f"{h}/{name}",
                cpus=int(n["Resources"].get("CPU", 0)), gpus=int(n["Resources"].get("GPU", 0)), resources=custom(n))
           for n, name, h in zip(raw, names, hostnames)]
    tokens = [t.strip() for t in (nodes or []) if t.strip()]
    for t in tokens:
        if not any(node.matches(t) for node in out):
            raise DeviceError(f"no node matches {t!r}; nodes: {', '.join(node.name for node in out)}")
    return [node for node in out if not tokens or any(node.matches(t) for t in tokens)]


def describe_nodes(nodes: Iterable[str] | None = None) -> str:
    """``--list --executor ray``: every (chosen) node with its devices."""
    lines = ["ray nodes (name  host  ip  devices  resources):"]
    for n in cluster_nodes(nodes):
        devices = ", ".join([f"cpu ({n.cpus} CPUs)"] + [f"cuda:{i}" for i in range(n.gpus)])
        lines.append(f"  {n.name}  {n.host}  {n.ip}  {devices}  {','.join(n.resources) or '-'}")
    return "\n".join(lines)
