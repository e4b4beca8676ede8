"""A cell: one independent, serialisable unit of a sweep (model x suite x device x batch x options).

Each suite module ``suites/<name>.py`` exposes ``run(cell: Cell) -> dict`` returning the result
columns it measures (see ``ROW_COLUMNS``) plus optionally ``"samples"`` (raw timings, kept in
results.json only) and ``"extra"`` (a dict of suite-specific data, JSON-serialisable). A suite
raises on failure; the executor turns the exception into a row with ``status``/``error``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ROW_COLUMNS = (
    "run_id", "suite", "model", "family", "device", "device_name", "dtype", "channels_last", "compile",
    "fused", "batch_size", "resolution", "threads", "params_m", "gmacs", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p99", "latency_ms_mean", "latency_ms_std", "n_samples", "throughput_img_s", "peak_mem_mb",
    "energy_j_per_img", "top1", "top1_source", "status", "error",
)
STATUSES = ("ok", "oom", "error", "skipped")


@dataclass(frozen=True)
class Cell:
    """Everything needed to measure one row, independent of the process that planned it."""
    suite: str
    model: str
    device: str = "cpu"
    batch_size: int = 1
    dtype: str = "float32"          # float32 | float16 | bfloat16 | amp
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    fused: bool = True
    resolution: int = 224
    threads: int | None = None
    warmup: float = 0.5             # seconds of warm-up
    min_time: float = 1.0           # seconds of timed samples (at least ``min_samples``)
    min_samples: int = 30
    options: dict[str, Any] = field(default_factory=dict)  # suite-specific (data dir, checkpoint, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cell":
        return cls(**d)
