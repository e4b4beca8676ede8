"""Re-implemented comparison models, one module per family, plus token-mixer swaps on LSNet.

``MODELS`` maps each registered name to ``(family, build)``; ``build(num_classes=1000,
img_size=224, **kw)`` returns an ``nn.Module`` whose inference form comes from ``lsnet.fuse``.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {}
