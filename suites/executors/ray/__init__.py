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
(``scheduler.ARTIFACT_LIMIT`` bytes per cell at most) and written under the driver's run folder.

Modules: :mod:`.connection` (Ray, connecting, the project revision), :mod:`.nodes` (naming the nodes),
:mod:`.devices` (``--device`` forms), :mod:`.remote` (what runs on a worker), :mod:`.scheduler`
(the executor on the driver).
"""
from __future__ import annotations

from suites.executors.ray.connection import (RayUnavailable, connect, disconnect, loopback, project_revision,
                                             require_ray)
from suites.executors.ray.devices import parse_cluster_devices, plan_devices
from suites.executors.ray.nodes import Node, cluster_nodes, describe_nodes
from suites.executors.ray.scheduler import RayExecutor, create, node_environments

__all__ = ["Node", "RayExecutor", "RayUnavailable", "cluster_nodes", "connect", "create", "describe_nodes",
           "disconnect", "loopback", "node_environments", "parse_cluster_devices", "plan_devices",
           "project_revision", "require_ray"]
