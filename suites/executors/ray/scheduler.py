"""The driver side: :class:`RayExecutor` starts a slot actor per device, sends each task's cells to
one slot, turns lost nodes into rows and retries, and gathers the nodes' environments."""
from __future__ import annotations

import contextlib
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suites.core.cell import Cell, Context, Task
from suites.core.devices import is_cuda
from suites.executors.base import Executor
from suites.executors.ray.connection import connect, disconnect, project_revision, require_ray
from suites.executors.ray.devices import parse_cluster_devices
from suites.executors.ray.nodes import Node, cluster_nodes
from suites.executors.ray.remote import RUN_DIR_TOKEN, replace_prefix, slot_class
from suites.sweep.runtime import Outcome, ladder_stop, outcome, skipped

ARTIFACT_LIMIT = 64 * 2**20           # bytes of files one cell may send back (read as each cell is sent)
STARTUP_TIMEOUT = 120.0               # seconds for a slot's actor to start


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


def is_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the worker or node of a call is gone (an actor, node, worker, raylet or
    object lost, their subclasses included), rather than that the call itself failed."""
    from ray import exceptions as rex
    return isinstance(exc, (rex.RayActorError, rex.NodeDiedError, rex.WorkerCrashedError, rex.ObjectLostError,
                            rex.LocalRayletDiedError))


class RayExecutor(Executor):
    """Runs tasks on the slots of a Ray cluster (see :mod:`suites.executors.ray`)."""
    name = "ray"

    def __init__(self, address: str | None = None, nodes: Iterable[str] | str | None = None,
                 devices: str | None = None, isolation: str = "auto", timeout: float | None = None,
                 revision: str | None = None):
        from suites.executors.local import ISOLATIONS
        if isolation not in ISOLATIONS:
            raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
        self.address, self.device_spec, self.isolation, self.timeout = address, devices, isolation, timeout
        self.nodes = [t.strip() for t in nodes.split(",")] if isinstance(nodes, str) else list(nodes or [])
        self.revision = revision or project_revision()
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
        cls = ray.remote(slot_class())
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
                yield from skipped(w.cells, w.skip_reason)
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
               "keep_files": ctx.run_dir is not None, "artifact_limit": ARTIFACT_LIMIT}
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
            out = replace_prefix(out, RUN_DIR_TOKEN, str(ctx.run_dir))
        placed = cell.with_(device=reply["device"]) if reply.get("device") else cell
        stop = ladder_stop(work.task, cell, out)
        yield placed, out
        work.next += 1
        if stop:
            yield from skipped(work.task.cells[work.next:], stop)
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
        if not is_lost(exc):
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
