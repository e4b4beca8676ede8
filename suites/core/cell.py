"""A cell: one independent, serialisable unit of a sweep (suite x model x engine x device x batch x options),
and a task: the cells one executor call runs serially.

A cell describes the measurement and nothing else: planner state (skip reasons, ladders) lives in
:class:`suites.sweep.plan.Task`, executor state (the run folder, isolation, progress) in :class:`Context`.
``options`` is the suite's own frozen options dataclass (see :mod:`suites.core.registry`); ``None``
means the suite's defaults. A cell is hashable and round-trips through JSON (:meth:`Cell.to_dict`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from suites.core.schema import parse_resolution

PROTOCOLS = ("interleaved", "sequential")


@dataclass(frozen=True)
class Cell:
    """Everything needed to measure one row, independent of the process that planned it."""
    suite: str
    model: str
    engine: str = "eager"
    device: str = "cpu"
    batch_size: int = 1
    dtype: str = "float32"          # one of schema.DTYPES
    channels_last: bool = False
    cuda_graphs: bool = False
    compile_mode: str | None = None
    fused: bool = True
    resolution: int | tuple[int, int] = 224   # square: one int; else (height, width) (see schema.parse_resolution)
    task: str = "classify"          # one of schema.TASKS: classify, features (backbone), segment (+ Semantic FPN)
    threads: int | None = None
    warmup: float = 0.5             # seconds of warm-up
    min_time: float = 1.0           # seconds of timed samples (at least ``min_samples``)
    min_samples: int = 30
    repeats: int = 1                # timed in this many fresh processes (the between-process spread)
    pin_cores: str | None = None    # run on these cores only, e.g. "0-1"
    parity_tol: float | None = None  # an engine's largest relative error from eager float32 (None: by dtype)
    calib_images: int = 300         # int8: calibration images of the post-training quantisation
    calib_source: str = "proxy"     # int8: "imagefolder:<folder>", "proxy" or "random" (suites.engines.quantize)
    protocol: str = "interleaved"   # timed suites: one of PROTOCOLS (see suites.interleave)
    reference: str | None = None    # the model every ratio of the cell's group is taken against
    burst: float = 0.05             # interleaved: seconds of one cell's burst in a round
    max_time: float = 4.0           # interleaved: seconds of timed samples per cell at most
    group_time: float = 75.0        # interleaved: seconds of rounds a whole group takes at most (after min_time)
    precision: float = 0.05         # interleaved: target half-width of the intervals, relative
    options: Any = None             # the suite's Options instance; None = its defaults

    @property
    def compile(self) -> bool:
        """Whether the model runs through torch.compile (the ``compile`` column)."""
        return self.engine == "compile"

    def __post_init__(self) -> None:
        # one value per resolution: (224, 224) and "224" are 224, [800, 1333] and "800x1333" are (800, 1333),
        # so that equal cells hash alike and round-trip through JSON (which has no tuples)
        h, w = parse_resolution(self.resolution)
        object.__setattr__(self, "resolution", h if h == w else (h, w))

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of the cell's input."""
        r = self.resolution
        return (r, r) if isinstance(r, int) else (r[0], r[1])

    @property
    def resolution_text(self) -> str:
        """The row's ``resolution``: ``"224"`` (square) or ``"800x1333"`` (height x width)."""
        h, w = self.hw
        return str(h) if h == w else f"{h}x{w}"

    @property
    def opts(self) -> Any:
        """The suite's options, defaults filled in."""
        if self.options is not None:
            return self.options
        from suites.core import registry
        return registry.get(self.suite).options()

    def with_(self, **changes: Any) -> "Cell":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["options"] = asdict(self.options) if self.options is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cell":
        d = dict(d)
        if d.get("options") is not None:
            from suites.core import registry
            d["options"] = registry.get(d["suite"]).options(**d["options"])
        return cls(**d)


@dataclass(frozen=True)
class Context:
    """What the executor gives a running cell besides the cell: where files go, how it runs."""
    run_dir: Path | None = None     # the run folder (artifacts, profiler traces); None: nothing written
    isolated: bool = False          # the cell has a process of its own (CPU memory cells need one)
    progress: bool = False          # progress bars for long cells

    @property
    def artifacts(self) -> Path:
        """``run_dir/artifacts`` (created), for exported models and other files a cell keeps."""
        path = (self.run_dir or Path(".")) / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Task:
    """Cells run serially on one device; a ``ladder`` stops at its first out-of-memory batch."""
    cells: tuple[Cell, ...]
    ladder: bool = False
    skip_reason: str | None = None   # every cell of the task becomes a skipped row with this reason
    interleaved: bool = False        # the cells are one group, measured round by round (suites.interleave)


def ladder_stop(ladder: bool, cell: Cell, status: str | None) -> str | None:
    """The skip reason of the batches after ``cell`` when its ``status`` ends its ladder (an out-of-memory
    ladder stops at its first out-of-memory batch), else None: the one rule every executor applies."""
    if ladder and status == "oom":
        return f"batch {cell.batch_size} already ran out of memory"
    return None
