"""Run a timing loop where CPython's frame stack cannot thrash.

CPython 3.11 and 3.12 keep Python frames in 16 KiB chunks and free a chunk as soon as the first
frame in it returns (python/cpython#142183, fixed in 3.13 by caching one chunk). A timed call that
crosses a chunk boundary therefore pays an ``mmap`` and a ``munmap`` (with its TLB shoot-down)
every time it goes past it: at an unlucky call depth, torch.compile's LSNet-T at batch 1 on two
threads measured 30 ms instead of 10 ms, with the depth set by nothing more than how the worker
was started. :func:`with_headroom` runs a function inside one very large frame: too large for any
16 KiB chunk, it gets a fresh 64 KiB chunk, and the calls below it have the ~39 KiB left in it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

FRAME_WORDS = 3100   # with CPython's 1000-word minimum overhead: a 64 KiB chunk (3100 + 1000 > 4096 / 2 words)


def _roomy_caller(words: int) -> Callable[..., Any]:
    """``call(fn, *args, **kw) -> fn(*args, **kw)`` from a frame with ``words`` unused local slots."""
    names = " = ".join(f"_{i}" for i in range(words))
    source = f"def call(fn, *args, **kw):\n    if False:\n        {names} = None\n    return fn(*args, **kw)\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<suites.stackroom>", "exec"), namespace)
    return namespace["call"]


_call = _roomy_caller(FRAME_WORDS)


def with_headroom(func: F) -> F:
    """``func`` run from the large frame (see the module docstring); same arguments and result."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kw: Any) -> Any:
        return _call(func, *args, **kw)
    return wrapper  # type: ignore[return-value]
