"""The Ray executor: a sweep's tasks on the devices of a Ray cluster, rows streamed back as cells end.

Every device of a node is a *slot*: one long-lived Ray actor pinned to the node
(``NodeAffinitySchedulingStrategy``, hard). A CPU slot reserves all of the node's CPUs
(``num_cpus`` = the node's CPU count), a GPU slot one GPU (``num_gpus=1``; Ray sets
``CUDA_VISIBLE_DEVICES`` and the cell measures ``cuda:0``, the GPU it was given). An actor runs one
call at a time, so timed cells never share a node's cores (nor a GPU). The driver sends a task's
cells one by one to the slot that runs the task (an out-of-memory ladder stays on one device and
stops at its first OOM); independent tasks run in parallel on different slots.

``--device`` on Ray: ``cpu`` / ``cuda`` = a pool (each cell once, on whichever device of that kind
is free first); ``all`` = every device of every node (each cell on each); ``all:cpu`` / ``all:cuda``
= every device of that kind. ``--nodes`` keeps the nodes whose name, IP, hostname, node id (prefix)
or custom resource matches.

Faults become rows: a node lost mid-cell gives an error row naming the node and the task is retried
once on another node with the same device kind; a worker on another project revision (or that
cannot import the project) gives an error row naming the node and both revisions; an interrupted
driver kills the slots (cancelling the running cells) and keeps every row already written.
Files a cell writes under its run folder are written on the node to a temporary folder, sent back
(``ARTIFACT_LIMIT`` bytes per cell at most) and written under the driver's run folder.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suites.core.cell import Task
from suites.executors.base import Executor
from suites.sweep.runtime import Outcome, outcome, run_task
from suites.core.cell import Cell, Context
from suites.core.devices import DeviceError, is_cuda

EXTRA_HINT = 'pip install -e ".[cluster]"'
OBJECT_STORE_BYTES = 150 * 2**20      # object store of a local cluster this module starts
ARTIFACT_LIMIT = 64 * 2**20           # bytes of files one cell may send back
STARTUP_TIMEOUT = 120.0               # seconds for a slot's actor to start
RUN_DIR_TOKEN = "{run_dir}"           # stands for the driver's run folder in a remote outcome
_STANDARD_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
_STARTED_HERE = False                 # whether this process started the Ray instance it uses


class RayUnavailable(ImportError):
    """Ray is not installed: the message names the extra to install."""


def require_ray() -> Any:
    """The ``ray`` package; :class:`RayUnavailable` naming the ``cluster`` extra when missing."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"--executor ray needs Ray ({type(exc).__name__}: {exc}); install it with "
                             f"{EXTRA_HINT}") from None
    return ray


@functools.lru_cache(maxsize=1)
def project_revision() -> str:
    """``lsnet-bench <version> (<git revision of this checkout>)``: compared between driver and workers."""
    from suites.core.hostinfo import git_revision as _git_revision
    try:
        from importlib.metadata import version
        ver = version("lsnet-bench")
    except Exception:  # noqa: BLE001
        ver = "unknown"
    return f"lsnet-bench {ver} ({_git_revision() or 'no git revision'})"


def _is_loopback(address: str | None) -> bool:
    host = (address or "").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def loopback() -> Iterator[None]:
    """Keep Ray on 127.0.0.1 while connecting: Ray otherwise rewrites a loopback address to the
    machine's outside IP, where a node bound to 127.0.0.1 does not listen."""
    import ray._private.ray_constants as constants
    before = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


def _reachable(address: str, timeout: float = 3.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _find_running(ray: Any) -> str | None:
    try:
        from ray._private.services import get_ray_address_from_environment
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        return None


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray (idempotent); True when it started a new local instance.

    ``address``: ``None`` = a running cluster if one is found, else a new local one; ``auto`` = a
    running cluster (ConnectionError when there is none); ``local`` = always a new local one (bound
    to 127.0.0.1, no dashboard, a small object store); ``HOST:PORT`` = that cluster.
    """
    global _STARTED_HERE
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address in (None, "auto"):
        found = _find_running(ray)
        if found is None and address == "auto":
            raise ConnectionError("no running Ray cluster found (start one with `ray start --head`, or pass "
                                  "--ray-address HOST:PORT or local)")
        address = found or "local"
    if address != "local":
        if not _reachable(address):
            raise ConnectionError(f"no Ray cluster answers at {address}")
        with loopback() if _is_loopback(address) else contextlib.nullcontext():
            ray.init(address=address, **quiet)
        return False
    with loopback():
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=num_cpus,
                 object_store_memory=OBJECT_STORE_BYTES, **quiet)
    _STARTED_HERE = True
    return True


def disconnect() -> None:
    """Shut Ray down if this process started it (a cluster it only joined keeps running)."""
    global _STARTED_HERE
    if _STARTED_HERE:
        require_ray().shutdown()
        _STARTED_HERE = False


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


# ---------------------------------------------------------------------------------------------------
# Worker side (runs in a slot's actor process on its node)

def _replace_prefix(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: _replace_prefix(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_replace_prefix(v, old, new) for v in obj)
    return obj


def _collect_files(root: Path, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    if total > limit:
        return [], f"{len(files)} artifact file(s) ({total / 2**20:.1f} MiB) not sent back: over the " \
                   f"{limit / 2**20:.0f} MiB limit of a cell"
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in files], None


def serve_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in this slot's process (called by the slot actor): the outcome, the files the
    cell wrote (paths relative to its run folder) and the physical device that measured it."""
    import importlib

    import ray

    from suites.executors.local import LocalExecutor
    if job.get("module"):
        importlib.import_module(job["module"])   # a suite registered outside the built-in list
    cell = Cell.from_dict(job["cell"])
    device = cell.device
    if job["kind"] == "cuda":
        ids = ray.get_gpu_ids()
        device = f"cuda:{ids[0]}" if ids else cell.device
        cell = cell.with_(device="cuda:0")   # the GPU Ray gave this slot
    tmp = Path(tempfile.mkdtemp(prefix="lsnet-ray-cell-")) if job["keep_files"] else None
    try:
        ctx = Context(run_dir=tmp, progress=False)
        out = LocalExecutor(isolation=job["isolation"], timeout=job["timeout"]).run_cell(cell, ctx)
        files: list[tuple[str, bytes]] = []
        if tmp is not None:
            files, note = _collect_files(tmp, job["artifact_limit"])
            out = _replace_prefix(out, str(tmp), RUN_DIR_TOKEN)
            if note:
                out["result"]["warnings"] = list(out["result"].get("warnings") or []) + [note]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"outcome": out, "files": files, "device": device}


def serve_environment(kind: str, threads: int) -> dict[str, Any]:
    """:func:`suites.sweep.results.host_environment` of this node for this slot's device."""
    import ray

    from suites.core.hostinfo import host_environment
    env = host_environment(["cuda:0"] if kind == "cuda" else ["cpu"], threads)
    if kind == "cuda":
        ids = ray.get_gpu_ids()
        for entry in env["devices"]:
            entry["device"] = f"cuda:{ids[0]}" if ids else entry["device"]
    return env


def _slot_class() -> type:
    """The slot actor's class. Defined in a function so Ray ships it by value: a node that cannot
    import the project (or runs another revision of it) still answers, with a clear error."""
    class Slot:
        def __init__(self, node: str) -> None:
            self.node = node

        def ping(self) -> int:
            import os
            return os.getpid()

        def _project(self, revision: str) -> tuple[Any, str | None]:
            import importlib
            try:
                mod = importlib.import_module("suites.executors.ray")
                mine = mod.project_revision()
            except Exception as exc:  # noqa: BLE001
                return None, (f"node {self.node} cannot import the project ({type(exc).__name__}: {exc}); "
                              f"the driver runs {revision}")
            if mine != revision:
                return None, (f"version skew on node {self.node}: the worker runs {mine}, the driver {revision}; "
                              f"install the driver's revision on every node")
            return mod, None

        def run_cell(self, job: dict) -> dict:
            import time
            started = time.time()
            mod, fatal = self._project(job["revision"])
            if fatal:
                reply = {"fatal": fatal}
            else:
                try:
                    reply = mod.serve_cell(job)
                except Exception as exc:  # noqa: BLE001  (a cell that cannot even start is its row)
                    reply = {"failed": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
            reply.update(started=started, ended=time.time())
            return reply

        def environment(self, kind: str, threads: int, revision: str) -> dict | None:
            mod, fatal = self._project(revision)
            return None if fatal else mod.serve_environment(kind, threads)

    return Slot


# ---------------------------------------------------------------------------------------------------
# Driver side

@dataclass
class Slot:
    """One device of one node and the actor that runs its cells."""
    node: Node
    kind: str                     # cpu | cuda
    index: int                    # GPU slot number on its node (0 for the CPU)
    actor: Any = None
    alive: bool = True
    used: bool = False

    @property
    def label(self) -> str:
        return f"{self.node.name} {self.kind}" + (f"#{self.index}" if self.kind == "cuda" else "")


@dataclass
class _Work:
    """A task (or what is left of it) and where it may run."""
    task: Task
    kind: str
    slot: Slot | None = None      # pinned: ``each`` mode, or a chain already started there
    next: int = 0                 # index of the next cell to run
    attempt: int = 0
    excluded: set[str] = field(default_factory=set)   # node ids a retry must avoid


_LOST = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError", "WorkerCrashedError",
         "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")


class RayExecutor(Executor):
    """Runs tasks on the slots of a Ray cluster (see the module docstring)."""
    name = "ray"

    def __init__(self, address: str | None = None, nodes: Iterable[str] | str | None = None,
                 devices: str | None = None, isolation: str = "auto", timeout: float | None = None,
                 revision: str | None = None, artifact_limit: int = ARTIFACT_LIMIT):
        from suites.executors.local import ISOLATIONS
        if isolation not in ISOLATIONS:
            raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
        self.address, self.device_spec, self.isolation, self.timeout = address, devices, isolation, timeout
        self.nodes = [t.strip() for t in nodes.split(",")] if isinstance(nodes, str) else list(nodes or [])
        self.revision = revision or project_revision()
        self.artifact_limit = artifact_limit
        self.slots: list[Slot] = []
        self.modes: dict[str, str] = {}
        self._ray: Any = None

    # -- setup -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self._ray is not None:
            return
        self._ray = require_ray()
        connect(self.address)
        chosen = cluster_nodes(self.nodes)
        self.modes = parse_cluster_devices(self.device_spec, chosen) if self.device_spec else {}
        self.slots = [Slot(n, "cpu", 0) for n in chosen] + [Slot(n, "cuda", i) for n in chosen for i in range(n.gpus)]

    def _start(self, slots: list[Slot]) -> None:
        """Start the actors of ``slots`` (in parallel); slots that do not start in time are dropped."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        cls = ray.remote(_slot_class())
        pings = {}
        for s in slots:
            s.actor = cls.options(
                num_cpus=s.node.cpus if s.kind == "cpu" else 0, num_gpus=1 if s.kind == "cuda" else 0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(s.node.node_id, soft=False),
                max_restarts=0, max_task_retries=0).remote(s.node.name)
            pings[s.actor.ping.remote()] = s
        ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=STARTUP_TIMEOUT)
        for ref, s in pings.items():
            try:
                if ref not in ready:
                    raise TimeoutError(f"did not start within {STARTUP_TIMEOUT:g} s (its resources are taken?)")
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001
                print(f"warning: {s.label} is not used: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
                self._drop(s)

    def _drop(self, slot: Slot) -> None:
        slot.alive = False
        if slot.actor is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(slot.actor)

    # -- running ---------------------------------------------------------------------------------
    def _works(self, tasks: Iterable[Task]) -> Iterator[_Work | Task]:
        for task in tasks:
            if task.skip_reason:
                yield task
                continue
            kind = "cuda" if is_cuda(task.cells[0].device) else "cpu"
            if self.modes.get(kind, "pool") == "each":
                yield from (_Work(task, kind, slot=s) for s in self.slots if s.kind == kind and s.alive)
            else:
                yield _Work(task, kind)

    def run(self, tasks: Iterable[Task], ctx: Context) -> Iterator[tuple[Cell, Outcome]]:
        """Every cell's outcome as it completes; rows of lost nodes, then their retries."""
        self._setup()
        ray = self._ray
        tasks = list(tasks)
        needed = {"cuda" if is_cuda(t.cells[0].device) else "cpu" for t in tasks if not t.skip_reason}
        self._start([s for s in self.slots if s.actor is None and s.kind in needed])
        pending: deque[_Work] = deque()
        for w in self._works(tasks):
            if isinstance(w, Task):   # skipped: its rows are written here, nothing runs
                yield from run_task(w, self.run_cell)
            else:
                pending.append(w)
        running: dict[Any, tuple[_Work, Slot]] = {}
        try:
            while pending or running:
                self._dispatch(pending, running, ctx)
                if not running:   # nothing can run what is left: every slot of its kind is gone
                    w = pending.popleft()
                    yield from self._unplaceable(w)
                    continue
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    work, slot = running.pop(ref)
                    rows = list(self._finish(ref, work, slot, pending, running, ctx))
                    self._dispatch(pending, running, ctx)   # keep the devices busy while rows are written
                    yield from rows
        finally:
            if running:   # interrupted (or the consumer stopped): stop the cells still running
                for ref, (_, slot) in list(running.items()):
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
                    self._drop(slot)
                running.clear()

    def _eligible(self, work: _Work, slot: Slot) -> bool:
        if work.slot is not None:
            return work.slot is slot
        return slot.kind == work.kind and slot.node.node_id not in work.excluded

    def _dispatch(self, pending: deque[_Work], running: dict[Any, tuple[_Work, Slot]], ctx: Context) -> None:
        busy = {id(s) for _, s in running.values()}
        for slot in self.slots:
            if not slot.alive or slot.actor is None or id(slot) in busy:
                continue
            for w in pending:
                if self._eligible(w, slot):
                    pending.remove(w)
                    self._submit(w, slot, running, ctx)
                    break

    def _submit(self, work: _Work, slot: Slot, running: dict[Any, tuple[_Work, Slot]], ctx: Context) -> None:
        from suites.core import registry
        cell = work.task.cells[work.next]
        work.slot = slot   # the rest of the chain stays on this device
        slot.used = True
        job = {"cell": cell.to_dict(), "module": registry.get(cell.suite).module, "revision": self.revision,
               "kind": slot.kind, "isolation": self.isolation, "timeout": self.timeout,
               "keep_files": ctx.run_dir is not None, "artifact_limit": self.artifact_limit}
        running[slot.actor.run_cell.remote(job)] = (work, slot)

    def _finish(self, ref: Any, work: _Work, slot: Slot, pending: deque[_Work],
                running: dict[Any, tuple[_Work, Slot]], ctx: Context) -> Iterator[tuple[Cell, Outcome]]:
        cell = work.task.cells[work.next]
        try:
            reply = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            yield from self._lost(exc, work, slot, pending)
            return
        if reply.get("fatal"):
            self._drop(slot)
            yield cell, self._facts(outcome(cell, "error", reply["fatal"]), slot, reply, work)
            yield from self._abandon(work, work.next + 1, reply["fatal"])
            return
        if reply.get("failed"):
            reply["outcome"] = outcome(cell, "error", f"on {slot.label}: {reply['failed']}")
        out = self._facts(reply["outcome"], slot, reply, work)
        self._write_files(reply.get("files") or [], ctx)
        if ctx.run_dir is not None:
            out = _replace_prefix(out, RUN_DIR_TOKEN, str(ctx.run_dir))
        placed = cell.with_(device=reply["device"]) if reply.get("device") else cell
        yield placed, out
        work.next += 1
        if work.task.ladder and out["result"].get("status") == "oom":
            for rest in work.task.cells[work.next:]:
                yield rest, outcome(rest, "skipped", f"batch {cell.batch_size} already ran out of memory")
        elif work.next < len(work.task.cells):
            self._submit(work, slot, running, ctx)

    def _facts(self, out: Outcome, slot: Slot, reply: dict[str, Any], work: _Work) -> Outcome:
        """The outcome with the node's ``host`` and where/when it ran in ``extra["ray"]``."""
        out = {**out, "machine": {**out.get("machine", {}), "host": slot.node.host}}
        result = dict(out.get("result") or {})
        result["extra"] = {**(result.get("extra") or {}),
                           "ray": {"node": slot.node.name, "node_id": slot.node.node_id, "ip": slot.node.ip,
                                   "device": reply.get("device"), "attempt": work.attempt,
                                   "started": reply.get("started"), "ended": reply.get("ended")}}
        out["result"] = result
        return out

    def _write_files(self, files: list[tuple[str, bytes]], ctx: Context) -> None:
        if ctx.run_dir is None:
            return
        root = Path(ctx.run_dir).resolve()
        for rel, data in files:
            path = (root / rel).resolve()
            if root not in path.parents:
                continue   # never outside the run folder
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def _lost(self, exc: BaseException, work: _Work, slot: Slot,
              pending: deque[_Work]) -> Iterator[tuple[Cell, Outcome]]:
        """The cell's slot died: an error row naming the node; the task retried once elsewhere."""
        cell = work.task.cells[work.next]
        alive = any(n.node_id == slot.node.node_id for n in cluster_nodes())
        what = f"worker of {slot.label} died" if alive else f"node {slot.node.name} ({slot.node.ip}) lost"
        if type(exc).__name__ not in _LOST and not any(type(e).__name__ in _LOST for e in type(exc).__mro__):
            what = f"the call on {slot.label} failed"
        self._drop(slot)
        if alive and what.startswith("worker"):
            fresh = Slot(slot.node, slot.kind, slot.index)
            self.slots.append(fresh)
            self._start([fresh])
        err = f"{what} while running this cell ({type(exc).__name__})"
        yield cell, self._facts(outcome(cell, "error", err), slot, {}, work)
        others = [s for s in self.slots if s.alive and s.kind == work.kind and s.node.node_id != slot.node.node_id]
        if work.attempt == 0 and others:
            pending.appendleft(_Work(work.task, work.kind, next=work.next, attempt=1,
                                     excluded=work.excluded | {slot.node.node_id}))
            return
        why = "already retried once" if work.attempt else f"no other node has a {work.kind} device"
        yield from self._abandon(work, work.next + 1, f"not run: {what} ({why})")

    def _abandon(self, work: _Work, start: int, error: str) -> Iterator[tuple[Cell, Outcome]]:
        for cell in work.task.cells[start:]:
            yield cell, outcome(cell, "error", error)

    def _unplaceable(self, work: _Work) -> Iterator[tuple[Cell, Outcome]]:
        where = work.slot.label if work.slot else f"any {work.kind} device"
        yield from self._abandon(work, work.next, f"not run: no working slot for {where} on the chosen nodes")

    # -- environment and teardown ----------------------------------------------------------------
    def environments(self, threads: int) -> dict[str, dict[str, Any]]:
        """One environment per host that ran cells (see :func:`node_environments`)."""
        return node_environments(self, threads)

    def close(self) -> None:
        for s in self.slots:
            if s.actor is not None:
                self._drop(s)
        self.slots = []
        self._ray = None
        disconnect()


def node_environments(executor: RayExecutor, threads: int, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """``host -> host_environment`` of every node that ran cells (its devices merged), gathered on
    the nodes by their slots; for ``env.json``'s ``hosts``."""
    if executor._ray is None:
        return {}
    ray = executor._ray
    calls = {s.actor.environment.remote(s.kind, threads, executor.revision): s
             for s in executor.slots if s.used and s.alive and s.actor is not None}
    ready, _ = ray.wait(list(calls), num_returns=len(calls), timeout=timeout) if calls else ([], [])
    out: dict[str, dict[str, Any]] = {}
    for ref in ready:
        slot = calls[ref]
        try:
            env = ray.get(ref)
        except Exception:  # noqa: BLE001  (a node lost since: its rows still name it)
            continue
        if env is None:
            continue
        env = {**env, "host": slot.node.host, "hostname": env["host"], "ray_node": slot.node.name,
               "ray_node_id": slot.node.node_id, "ip": slot.node.ip}
        if slot.node.host in out:
            known = {d["device"] for d in out[slot.node.host]["devices"]}
            out[slot.node.host]["devices"] += [d for d in env["devices"] if d["device"] not in known]
        else:
            out[slot.node.host] = env
    for env in out.values():
        env["devices"].sort(key=lambda d: (d["device"] != "cpu", d["device"]))
    return out


def create(address: str | None = None, nodes: Iterable[str] | str | None = None, **kw: Any) -> RayExecutor:
    """A :class:`RayExecutor` (Ray itself is imported when it first runs; :func:`require_ray` checks)."""
    require_ray()
    return RayExecutor(address=address, nodes=nodes, **kw)
