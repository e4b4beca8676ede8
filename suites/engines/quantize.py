"""int8 as people deploy it: static post-training quantisation of a cell's exported float32 ONNX file,
calibrated on a few hundred images, and the accuracy it costs, judged against eager float32.

- **ONNX Runtime** (:func:`quantize_onnx`): the export with the ``shift`` SKA translation (the engine's
  choice for int8), ``onnxruntime.quantization.quant_pre_process`` (shape
  inference and graph optimisation), then ``quantize_static`` in the QDQ format: weights int8, symmetric,
  per output channel; activations uint8, asymmetric, per tensor; MinMax calibration. On a CPU without VNNI
  (``avx512_vnni``, ``avx_vnni``, ``amx_int8``) the weights use 7 bits (``reduce_range``): the AVX2 u8 x s8
  multiply-add (``vpmaddubsw``) adds two products into a saturating int16, which 8-bit weights can
  overflow; with VNNI the products accumulate into int32 and all 8 bits are used. Which op types kept
  float inputs (no DequantizeLinear in front of them) is counted from the file (``float_ops``).
- **OpenVINO** (:func:`quantize_openvino`): the same float32 ONNX file read by OpenVINO, constants
  folded, then ``nncf.quantize`` (preset performance: symmetric activations and weights, per-channel
  weights, fast bias correction) and saved as IR (``.xml``/``.bin``); the engine records the precision
  each layer of the compiled model runs in (``runtime_precisions``).

Both quantisers run in a spawned process of their own (:func:`_in_child`): calibration memory goes back when
it ends, and a crash inside their native code is the cell's error row, not the end of the sweep.

Calibration images (``--calib-images N``, ``--calib-source``): the cell's ``calib_source`` is one of
``imagefolder:<folder>`` (an ImageFolder with the accuracy suite's evaluation preprocessing, a seeded
shuffle), ``proxy`` (the proxy task's image generator, :mod:`suites.core.proxy_task`, at the cell's
resolution and with its normalisation) or ``random`` (seeded normal noise). The quantised file is kept
under ``artifacts/`` with ``int8``, the source and the image count in its name, next to a ``.json`` of
the facts of its making, and reused by every later cell that asks for the same.

**The accuracy cost** (:func:`judge`): every int8 cell runs :data:`AGREEMENT_IMAGES` fixed inputs (from
the calibration source, disjoint from the calibration images) through the int8 step and through eager
float32 with the same weights: ``agreement`` is the share (percent) of inputs whose top-1 class is the
same, ``logit_rel`` is max |int8 - float| / max |float| over all logits (the ``parity_rel`` of the row).
Rule: the row is an error when ``logit_rel`` is above the tolerance (``--parity-tol``, default 1.0 for
int8: a graph quantised into garbage) and, for trained weights (a checkpoint, or the proxy task's
trained model), when the agreement is below :data:`MIN_AGREEMENT` percent. With random weights (the
timed suites' models) the logits are nearly tied, so top-1 agreement says little about the deployed
model; it is still recorded, and the row says ``weights: random`` beside it. The accuracy suite prepares
with ``strict=False``: a failing int8 form is evaluated all the same, its error row keeps its top-1.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch

from suites.core.cell import Cell, Context

CALIB_SOURCES = ("auto", "imagefolder", "proxy", "random")   # --calib-source; auto: imagefolder with --data, else proxy
DEFAULT_CALIB_IMAGES = 300
AGREEMENT_IMAGES = 64          # fixed inputs the int8 step is compared with eager float32 on
AGREEMENT_SEED = 4321
CALIB_SEED = 1729
MIN_AGREEMENT = 80.0           # percent: the least top-1 agreement of a trained model's int8 form
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8")
PROXY_CHUNK = 64               # proxy-generator images per draw
ORT_BATCH = 10                 # calibration images per ONNX Runtime calibration batch


class QuantizationError(RuntimeError):
    """A model that the engine's quantiser could not turn into a runnable int8 graph."""


# ---------------------------------------------------------------- calibration and agreement inputs
def resolve_source(source: str | None, data: str | None) -> str:
    """The cell's ``calib_source`` from ``--calib-source`` and ``--data``: ``imagefolder:<absolute folder>``,
    ``proxy`` or ``random`` (ValueError for an ImageFolder source without a folder)."""
    source = source or "auto"
    if source not in CALIB_SOURCES:
        raise ValueError(f"unknown --calib-source {source!r}; choose from {', '.join(CALIB_SOURCES)}")
    if source == "auto":
        source = "imagefolder" if data else "proxy"
    if source == "imagefolder":
        if not data:
            raise ValueError("--calib-source imagefolder needs --data DIR (an ImageFolder); or use proxy or random")
        return f"imagefolder:{Path(data).resolve()}"
    return source


def source_kind(cell: Cell) -> str:
    """``imagefolder``, ``proxy`` or ``random``."""
    return cell.calib_source.split(":", 1)[0]


def source_label(cell: Cell) -> str:
    """The calibration source as it appears in file names: ``proxy``, ``random``, or
    ``imagefolder-<folder name>-<hash of its path>``."""
    kind = source_kind(cell)
    if kind != "imagefolder":
        return kind
    folder = cell.calib_source.split(":", 1)[1]
    safe = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in Path(folder).name)[:32]
    return f"imagefolder-{safe}-{hashlib.sha1(folder.encode()).hexdigest()[:6]}"


def _proxy_images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """``n`` images of the proxy task's generator (normalised as the proxy task feeds them), ``h`` x ``w``."""
    from suites.core import proxy_task
    size = max(h, w)
    top, left = (size - h) // 2, (size - w) // 2
    out = []
    for start in range(0, n, PROXY_CHUNK):     # chunks with seeds of their own: bounded memory at any size
        g = torch.Generator().manual_seed(seed + 7919 * (start // PROXY_CHUNK))
        x, _ = proxy_task._generate(min(PROXY_CHUNK, n - start), size, proxy_task.ProxyConfig.distractors, g)
        out.append(proxy_task.to_input(x[:, :, top:top + h, left:left + w]))
    return torch.cat(out).contiguous()


def _folder_images(folder: str, h: int, w: int, part: str, n: int, crop_ratio: float | None) -> tuple[torch.Tensor, int]:
    """(images, how many the folder offered) from an ImageFolder with the evaluation preprocessing: a seeded
    shuffle, whose first :data:`AGREEMENT_IMAGES` are the agreement set and the rest the calibration set."""
    from suites.core.imagefolder import OFFICIAL_CROP_RATIO, EvalTransform, ImageFolderDataset
    ds = ImageFolderDataset(folder, EvalTransform(max(h, w), crop_ratio or OFFICIAL_CROP_RATIO))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(CALIB_SEED)).tolist()
    if len(order) <= AGREEMENT_IMAGES:
        pool = order                    # too few images to keep the sets apart: both use all (recorded)
    else:
        pool = order[:AGREEMENT_IMAGES] if part == "agreement" else order[AGREEMENT_IMAGES:]
    out = []
    for i in pool:
        x, _, ok, _ = ds[i]
        if ok:
            s = x.shape[-1]
            top, left = (s - h) // 2, (s - w) // 2
            out.append(x[:, top:top + h, left:left + w])
        if len(out) == n:
            break
    if not out:
        raise QuantizationError(f"calibration folder {folder}: no readable image")
    return torch.stack(out), len(ds)


def images(cell: Cell, part: str, n: int, crop_ratio: float | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """(``n`` float32 inputs for ``part`` (``calibration`` or ``agreement``), where they came from)."""
    h, w = cell.hw
    kind = source_kind(cell)
    seed = CALIB_SEED if part == "calibration" else AGREEMENT_SEED
    facts: dict[str, Any] = {"source": kind}
    if kind == "imagefolder":
        folder = cell.calib_source.split(":", 1)[1]
        x, total = _folder_images(folder, h, w, part, n, crop_ratio)
        facts.update(folder=folder, folder_images=total, disjoint=total > AGREEMENT_IMAGES)
    elif kind == "proxy":
        from suites.core import proxy_task
        x = _proxy_images(n, h, w, seed)
        facts.update(generator=f"proxy_task v{proxy_task.VERSION}", seed=seed)
    else:
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
        facts.update(seed=seed)
    facts["images"] = int(x.shape[0])
    return x, facts


def skip_reason(cell: Cell) -> str | None:
    """Why an engine that quantises cannot run this int8 cell (None: it can)."""
    from suites.core.devices import is_cuda
    if is_cuda(cell.device):
        return "int8 post-training quantisation is measured on CPUs here (its CUDA form is TensorRT's); use --device cpu"
    task = getattr(cell, "task", "classify")
    if task != "classify":
        return (f"int8 is judged by top-1 agreement with float32, which needs class logits; --task {task} has none "
                "(use --task classify)")
    return None


def crop_ratio_of(cell: Cell) -> float | None:
    """The accuracy suite's ``--crop-ratio`` where the cell has it (ImageFolder preprocessing), else None."""
    try:
        return getattr(cell.opts, "crop_ratio", None)
    except (ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------- the CPU's int8 units
def cpu_int8_features() -> dict[str, Any]:
    """Which int8 dot-product instructions this CPU has (VNNI or not) and what that means."""
    from suites.core.hostinfo import cpu_flags
    flags = cpu_flags()
    vnni = sorted(f for f in VNNI_FLAGS if f in flags)
    return {"vnni": bool(vnni), "vnni_flags": vnni, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantisers' console output (progress bars, root-logger notes) kept off the sweep's console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class Quantized(NamedTuple):
    path: Path
    facts: dict[str, Any]


def artifact_stem(float_path: Path, cell: Cell, suffix: str = "") -> str:
    """The float file's stem with ``float32`` replaced by ``int8-<source><images>`` (plus ``suffix``)."""
    tag = f"int8-{source_label(cell)}{cell.calib_images}{suffix}"
    stem = float_path.stem
    return stem.replace("_float32", f"_{tag}", 1) if "_float32" in stem else f"{stem}_{tag}"


def _cached(path: Path, facts_path: Path) -> dict[str, Any] | None:
    if path.is_file() and facts_path.is_file():
        try:
            return {**json.loads(facts_path.read_text()), "cached": True}
        except ValueError:
            return None
    return None


def _write_facts(facts_path: Path, facts: dict[str, Any]) -> None:
    tmp = facts_path.with_name(f".{facts_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(facts, indent=1, sort_keys=True, default=str))
    tmp.replace(facts_path)


# ---------------------------------------------------------------- ONNX Runtime
def ort_settings(features: dict[str, Any] | None = None) -> dict[str, Any]:
    """The QDQ settings this CPU gets (7-bit weights without VNNI)."""
    features = features or cpu_int8_features()
    reduce_range = not features["vnni"]
    return {"format": "QDQ", "per_channel": True, "weight_quantization": "int8 symmetric, per output channel"
            + (" (7-bit range: no VNNI)" if reduce_range else ""),
            "activation_quantization": "uint8 asymmetric, per tensor", "calibration_method": "MinMax",
            "reduce_range": reduce_range,
            "reduce_range_reason": ("no VNNI: AVX2's u8 x s8 multiply-add saturates int16 with 8-bit weights"
                                    if reduce_range else f"VNNI ({', '.join(features['vnni_flags'])}): int32 "
                                                         "accumulation, full 8-bit weights"),
            "cpu": features}


def _in_child(fn: Any, *args: Any) -> Quantized:
    """``fn(*args)`` in a fresh (spawned) process: calibration and the quantisers' native code run apart from
    the process that measures (their memory is returned when it ends, and a crash in them is this cell's
    error, not the sweep's end)."""
    import concurrent.futures as cf
    import multiprocessing as mp
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        try:
            return pool.submit(fn, *args).result()
        except cf.process.BrokenProcessPool as exc:
            raise QuantizationError(f"the quantiser's process died ({exc}); see its output above") from None


def quantize_onnx(cell: Cell, ctx: Context, float_path: Path, crop_ratio: float | None = None) -> Quantized:
    """The cell's int8 QDQ ONNX file made from ``float_path`` (once per run folder; see the module docstring)."""
    settings = ort_settings()
    path = ctx.artifacts / (artifact_stem(float_path, cell, "_rr" if settings["reduce_range"] else "") + ".onnx")
    cached = _cached(path, path.with_suffix(".json"))
    if cached is not None:
        return Quantized(path, cached)
    return _in_child(_quantize_onnx, cell, path, settings, float_path, crop_ratio)


def _quantize_onnx(cell: Cell, path: Path, settings: dict[str, Any], float_path: Path,
                   crop_ratio: float | None) -> Quantized:
    from onnxruntime import quantization as q
    facts_path = path.with_suffix(".json")
    t0 = time.perf_counter()
    x, calib = images(cell, "calibration", cell.calib_images, crop_ratio)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        pre = Path(work) / "pre.onnx"
        try:
            q.quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001  symbolic shape inference fails on some graphs; plain ONNX shapes do
            q.quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)

        class Reader(q.CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter(x.split(ORT_BATCH))

            def get_next(self) -> dict[str, Any] | None:
                b = next(self.batches, None)
                return None if b is None else {"x": b.numpy()}

        try:
            with _quiet():   # per-channel notes about 1-D constants, one line each
                q.quantize_static(str(pre), str(tmp), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                                  reduce_range=settings["reduce_range"], activation_type=q.QuantType.QUInt8,
                                  weight_type=q.QuantType.QInt8, calibrate_method=q.CalibrationMethod.MinMax,
                                  extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        except Exception as exc:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            raise QuantizationError(f"onnxruntime could not quantise {cell.model}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    float_ops, int8_ops = onnx_op_precisions(tmp)
    facts = {"quantizer": "onnxruntime.quantization.quantize_static", **settings,
             "calibration": {**calib, "requested": cell.calib_images}, "float_ops": float_ops, "int8_ops": int8_ops,
             "from": float_path.name, "file": path.name, "quantize_s": round(time.perf_counter() - t0, 2)}
    tmp.replace(path)
    _write_facts(facts_path, facts)
    return Quantized(path, {**facts, "cached": False})


def onnx_op_precisions(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(float ops, int8 ops) of a QDQ file by op type: an op is int8 when every input that is not a
    constant comes from a DequantizeLinear (ONNX Runtime then runs it on integers), else float."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    consts = {i.name for i in g.initializer}
    producer: dict[str, str] = {}
    for node in g.node:
        for o in node.output:
            producer[o] = node.op_type
        if node.op_type == "Constant":
            consts.update(node.output)
    floats: Counter[str] = Counter()
    ints: Counter[str] = Counter()
    skip = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Identity"}
    for node in g.node:
        if node.op_type in skip:
            continue
        acts = [i for i in node.input if i and i not in consts and producer.get(i) != "Constant"]
        if not acts:
            continue
        quantised = all(producer.get(i) == "DequantizeLinear" for i in acts)
        (ints if quantised else floats)[node.op_type] += 1
    return dict(sorted(floats.items())), dict(sorted(ints.items()))


# ---------------------------------------------------------------- OpenVINO
def quantize_openvino(cell: Cell, ctx: Context, float_path: Path, crop_ratio: float | None = None) -> Quantized:
    """The cell's int8 OpenVINO IR (``.xml`` + ``.bin``) made by NNCF from ``float_path`` (once per run folder)."""
    path = ctx.artifacts / (artifact_stem(float_path, cell) + ".xml")
    cached = _cached(path, path.with_suffix(".json"))
    if cached is not None and path.with_suffix(".bin").is_file():
        return Quantized(path, cached)
    return _in_child(_quantize_openvino, cell, path, float_path, crop_ratio)


def _quantize_openvino(cell: Cell, path: Path, float_path: Path, crop_ratio: float | None) -> Quantized:
    import openvino as ov
    facts_path = path.with_suffix(".json")
    try:
        import nncf
    except ImportError as exc:
        raise QuantizationError(f"nncf is not installed (pip install -e \".[engines]\"): {exc}") from exc
    t0 = time.perf_counter()
    x, calib = images(cell, "calibration", cell.calib_images, crop_ratio)
    model = ov.Core().read_model(str(float_path))
    from openvino import passes
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)
    dataset = nncf.Dataset([b.numpy() for b in x.split(1)])
    try:
        with _quiet():     # NNCF's progress bars and notes would tear the sweep's console
            quantised = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                                      subset_size=int(x.shape[0]))
    except Exception as exc:  # noqa: BLE001
        raise QuantizationError(f"nncf could not quantise {cell.model}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    fq = Counter(op.get_type_name() for op in quantised.get_ops() if op.get_type_name() == "FakeQuantize")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.xml")
    ov.save_model(quantised, str(tmp), compress_to_fp16=False)
    facts = {"quantizer": f"nncf.quantize {nncf.__version__}", "preset": "performance",
             "per_channel": True, "weight_quantization": "int8 symmetric, per output channel",
             "activation_quantization": "int8/uint8 symmetric, per tensor", "fast_bias_correction": True,
             "constant_folding": True, "fake_quantize_nodes": fq.get("FakeQuantize", 0),
             "calibration": {**calib, "requested": cell.calib_images}, "cpu": cpu_int8_features(),
             "from": float_path.name, "file": path.name, "quantize_s": round(time.perf_counter() - t0, 2)}
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)
    _write_facts(facts_path, facts)
    return Quantized(path, {**facts, "cached": False})


def runtime_precisions(compiled: Any) -> dict[str, dict[str, int]]:
    """``{precision: {layer type: count}}`` of an OpenVINO compiled model (what each layer runs in)."""
    out: dict[str, Counter[str]] = {}
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        kind = rt["layerType"].astype(str) if "layerType" in rt else op.get_type_name()
        if kind in ("Input", "Output", "Parameter", "Result", "Const", "Constant"):
            continue
        prec = rt["runtimePrecision"].astype(str) if "runtimePrecision" in rt else "?"
        out.setdefault(prec, Counter())[kind] += 1
    return {p: dict(sorted(c.items())) for p, c in sorted(out.items())}


# ---------------------------------------------------------------- the accuracy cost
def float_model(cell: Cell, *, num_classes: int = 1000, checkpoint: str | None = None) -> torch.nn.Module:
    """The eager float32 model (CPU) an int8 cell is judged against: the weights every engine exports
    (:func:`suites.core.modelprep.seeded_weights`, or the checkpoint)."""
    from suites.core import modelprep
    ref_cell = cell.with_(engine="eager", device="cpu", dtype="float32", channels_last=False, cuda_graphs=False)
    with modelprep.seeded_weights():
        return modelprep.build_model(ref_cell, num_classes=num_classes, checkpoint=checkpoint)


def judge(cell: Cell, step: Any, *, num_classes: int = 1000, checkpoint: str | None = None,
          crop_ratio: float | None = None, strict: bool = True) -> dict[str, Any]:
    """Compare the int8 ``step`` with eager float32 on the fixed agreement inputs; set ``step.parity_rel``
    and ``step.info["int8"]``; when the rule of the module docstring fails, ParityError (``strict``) or
    the reason in ``step.parity_failure``."""
    from suites.engines.base import fail_parity, relative_error
    x, source = images(cell, "agreement", AGREEMENT_IMAGES, crop_ratio)
    model = float_model(cell, num_classes=num_classes, checkpoint=checkpoint)
    with torch.inference_mode():
        ref = torch.cat([model(part) for part in x.split(16)])
    out = step.infer(x)
    rel = relative_error(out, ref)
    agree = 100.0 * float((out.argmax(1) == ref.argmax(1)).float().mean())
    l2 = float(((out - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-30)).mean())
    trained = checkpoint is not None
    from suites.core.precision import PRECISIONS
    limit = cell.parity_tol if cell.parity_tol is not None else PRECISIONS["int8"].parity_tol
    rule = (f"logit_rel <= {limit:g}" + (f" and agreement >= {MIN_AGREEMENT:g}%" if trained else
                                         " (random weights: top-1 agreement is recorded, not judged)"))
    facts = {"agreement": agree, "logit_rel": rel, "logit_rel_l2_mean": l2, "agreement_inputs": source,
             "weights": "trained" if trained else "random (seeded)", "rule": rule}
    step.parity_rel = rel
    step.info["int8"] = {**step.info.get("int8", {}), **facts}
    if not rel <= limit:
        fail_parity(step, f"{cell.engine} int8 output differs from eager float32 by {rel:.3g} (relative logit "
                          f"error), above the int8 tolerance {limit:g} (top-1 agreement {agree:.1f}%)", strict)
    elif trained and agree < MIN_AGREEMENT:
        fail_parity(step, f"{cell.engine} int8 agrees with eager float32 on the top-1 of only {agree:.1f}% of "
                          f"{x.shape[0]} inputs, below {MIN_AGREEMENT:g}%", strict)
    return facts

