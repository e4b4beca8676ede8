"""Connecting the driver to Ray: the ``ray`` package (or :class:`RayUnavailable`), a running cluster
or a new local one kept on 127.0.0.1, and the project revision driver and workers compare."""
from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import Iterator
from typing import Any

from suites.core.hostinfo import git_revision

EXTRA_HINT = 'pip install -e ".[cluster]"'
OBJECT_STORE_BYTES = 150 * 2**20      # object store of a local cluster this module starts
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
    try:
        from importlib.metadata import version
        ver = version("lsnet-bench")
    except Exception:  # noqa: BLE001
        ver = "unknown"
    return f"lsnet-bench {ver} ({git_revision() or 'no git revision'})"


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


def _find_running() -> str | None:
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
        found = _find_running()
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
