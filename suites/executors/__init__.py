"""Executors run the tasks of a sweep and hand back each cell's outcome as it completes.

``EXECUTORS`` is the one list of names: ``local`` (this machine: each cell in this process or in a
worker process of its own, by ``--isolation``) and ``ray`` (cells as Ray tasks across a cluster).
"""
from __future__ import annotations

import importlib
from typing import Any

from suites.executors.base import Executor

EXECUTORS = ("local", "ray")


def get(name: str, **kw: Any) -> Executor:
    """A new executor ``name`` built with ``kw``; ValueError naming the executors when unknown."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    return importlib.import_module(f"suites.executors.{name}").create(**kw)


__all__ = ["EXECUTORS", "Executor", "get"]
