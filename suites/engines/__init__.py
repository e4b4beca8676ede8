"""Inference engines: one module each, a cell in and a ready step out (see :mod:`suites.engines.base`).

``ENGINES`` is the one list of engine names; :func:`get` imports an engine's module only when it is
chosen, so optional packages (onnxruntime, openvino, tensorrt) are never needed by a run that does
not use them.
"""
from __future__ import annotations

import importlib

from suites.engines.base import Engine, Step

ENGINES = ("eager", "compile", "onnxruntime", "openvino", "tensorrt")


def get(name: str) -> Engine:
    """The engine ``name``; ValueError naming the engines when unknown."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    return importlib.import_module(f"suites.engines.{name}").ENGINE


def quantizers() -> list[str]:
    """The engines that run ``--dtype int8`` (post-training quantisation of the export, ``Engine.quantizes``)."""
    out = []
    for name in ENGINES:
        try:
            if get(name).quantizes:
                out.append(name)
        except ImportError:
            continue
    return out


def availability() -> dict[str, str | None]:
    """``{engine: None}`` when it can run here, else the reason it cannot."""
    out: dict[str, str | None] = {}
    for name in ENGINES:
        try:
            out[name] = get(name).unavailable()
        except ImportError as exc:
            out[name] = f"cannot import engines.{name}: {exc}"
    return out


__all__ = ["ENGINES", "Engine", "Step", "availability", "get", "quantizers"]
