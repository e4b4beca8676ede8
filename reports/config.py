"""Measured configurations in words: engine, host, device, dtype, layout, compile.

A *configuration* is everything but the model and the batch size that a number depends on. Figures get
one panel per configuration and are titled with :func:`config_label` (e.g.
``"ONNX Runtime · Intel Xeon Platinum 8375C (2 threads) · float32 · NCHW"``); when the rows come from
several hosts the host leads the label, and when one host/configuration appears in several runs the
run id is added, so that no two runs share a label and none is told apart by run id alone.
"""
from __future__ import annotations

import re

import pandas as pd

from suites.core.schema import DEFAULT_TASK, resolution_text

ENGINE_NAMES = {"eager": "PyTorch eager", "compile": "torch.compile", "onnxruntime": "ONNX Runtime",
                "openvino": "OpenVINO", "tensorrt": "TensorRT"}
CONFIG_COLUMNS = ("host", "engine", "device", "device_name", "threads", "dtype", "channels_last", "compile",
                  "resolution", "task")


def engine_name(engine: str | None) -> str:
    """The engine's name in words (``onnxruntime`` -> ``ONNX Runtime``)."""
    return ENGINE_NAMES.get(str(engine or "eager"), str(engine))


def short_device(name: str | None, device: str | None = None) -> str:
    """A readable device name: trademarks, ``CPU @ 2.90GHz`` and ``NVIDIA`` noise removed."""
    text = str(name or device or "unknown device")
    text = re.sub(r"\((R|TM|r|tm)\)", "", text)
    text = re.sub(r"\s+CPU\s*@.*$|\s+@\s*[\d.]+\s*GHz.*$|\s+\d+-Core Processor$", "", text)
    return re.sub(r"\s+", " ", text).strip() or "unknown device"


def _flag(v) -> bool:
    return bool(v) and not (isinstance(v, float) and v != v) and str(v).lower() not in ("false", "0", "none", "nan")


def describe(r: pd.Series | dict) -> str:
    """One configuration in words, without the host: engine · device (threads) · dtype · layout [· compiled]."""
    dev = short_device(r.get("device_name"), r.get("device"))
    threads = r.get("threads")
    if str(r.get("device") or "cpu").startswith("cpu") and threads is not None and threads == threads:
        dev += f" ({int(threads)} thread{'s' if int(threads) != 1 else ''})"
    parts = [engine_name(r.get("engine")), dev, str(r.get("dtype") or "float32"),
             "NHWC (channels_last)" if _flag(r.get("channels_last")) else "NCHW"]
    if _flag(r.get("compile")) and r.get("engine") != "compile":
        parts.append("compiled")
    try:
        res = resolution_text(r.get("resolution"))
    except ValueError:
        res = None
    if res is not None and res != "224":
        parts.append(f"{res} px")
    task = r.get("task")
    if isinstance(task, str) and task and task != DEFAULT_TASK:
        parts.append(task)
    return " · ".join(parts)


def add_config(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``config`` (the label of each row's configuration) and ``config_key`` columns."""
    df = df.copy()
    if df.empty:
        df["config"], df["config_key"] = pd.Series(dtype=object), pd.Series(dtype=object)
        return df
    base = [describe(r) for r in df.to_dict("records")]
    hosts = df["host"].fillna("unknown host").astype(str)
    multi_host = hosts.nunique() > 1
    label = pd.Series([f"{h} · {b}" if multi_host else b for h, b in zip(hosts, base)], index=df.index)
    runs_per_label = df.groupby(label)["run_label"].nunique()
    df["config"] = [f"{lab} [run {r}]" if runs_per_label[lab] > 1 else lab for lab, r in zip(label, df["run_label"])]
    df["config_key"] = df["config"]
    return df
