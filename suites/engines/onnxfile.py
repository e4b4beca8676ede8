"""The ONNX file of a cell's model, exported once per run folder and kept under ``artifacts/`` so a
user can deploy exactly what was measured. The file name starts with the model name and says what
it holds: resolution, task, dtype, fused or not, the SKA translation (LSNet models), and the checkpoint and
class count where not the default."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from suites.core.modelprep import seeded_weights
from suites.core import modelprep
from suites.core.cell import Cell, Context
from suites.core.counting import count_params


def artifact_name(cell: Cell, num_classes: int = 1000, checkpoint: str | None = None, ska: str | None = None) -> str:
    """``lsnet_t_r224_float32_fused_ska-conv.onnx``; ``ska`` only for models with SKA ops; a non-square
    resolution is ``r800x1333``; a task other than classify follows it (``lsnet_t_r512_segment_...``)."""
    dtype = "float16" if cell.dtype == "float16" else "float32"
    parts = [cell.model, f"r{cell.resolution_text}", *([cell.task] if cell.task != "classify" else []), dtype,
             "fused" if cell.fused else "unfused"]
    if ska:
        parts.append(f"ska-{ska}")
    if num_classes != 1000:
        parts.append(f"c{num_classes}")
    if checkpoint:
        parts.append(Path(checkpoint).stem)
    return "_".join(parts) + ".onnx"


class Exported(NamedTuple):
    path: Path
    params: int
    ska: str | None         # the SKA translation in the file; None for models without SKA ops


def exported(cell: Cell, ctx: Context, *, num_classes: int = 1000, checkpoint: str | None = None,
             ska: str = "shift") -> Exported:
    """The cell's ONNX file, exported on first use and reused after. ``ska`` is the SKA translation
    the engine runs fastest."""
    from suites.engines.onnx_export import export_onnx, has_ska
    cpu = cell.with_(engine="eager", device="cpu", dtype="float32", channels_last=False, cuda_graphs=False)
    with seeded_weights():
        model = modelprep.build_model(cpu, num_classes=num_classes, checkpoint=checkpoint)
    ska_used = ska if has_ska(model) else None
    path = ctx.artifacts / artifact_name(cell, num_classes, checkpoint, ska_used)
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        export_onnx(model, tmp, resolution=cell.resolution, dtype="float16" if cell.dtype == "float16" else "float32",
                    fused=False, ska=ska)
        tmp.replace(path)
    return Exported(path, count_params(model), ska_used)
