"""The gate's benchmark cases: each builds, from the public API only, a callable to time.

The same file is loaded by both sides of the A/B comparison, while ``lsnet``, ``suites`` and
``baselines`` are imported from each side's own tree, so a case measures that side's code. The
unfold ``reference`` SKA is not gated (its speed swings with the allocator); it stays a unit
benchmark in ``test_bench_lsnet.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

Case = Callable[[], Callable[[], object]]


def _ska_inputs(n: int, c: int, h: int, cw: int, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, h, generator=g).requires_grad_(grad)
    w = torch.randn(n, cw, 9, h, h, generator=g).requires_grad_(grad)
    return x, w


def ska_torch_forward() -> Callable[[], object]:
    """SKA forward, torch backend, LSNet-T stage-2 shape at batch 16."""
    from lsnet.ops import ska
    x, w = _ska_inputs(16, 128, 14, 16)

    def run() -> object:
        with torch.inference_mode():
            return ska(x, w, "torch")
    return run


def ska_torch_forward_backward() -> Callable[[], object]:
    """SKA forward and backward (dx, dw), torch backend, LSNet-T stage-2 shape at batch 8."""
    from lsnet.ops import ska
    x, w = _ska_inputs(8, 128, 14, 16, grad=True)
    gy = torch.randn_like(x)
    return lambda: torch.autograd.grad(ska(x, w, "torch"), (x, w), gy)


def _fused_forward(name: str, batch: int, resolution: int = 224) -> Callable[[], object]:
    import lsnet
    from suites.core import zoo
    torch.manual_seed(0)
    model = lsnet.fuse(zoo.create(name, img_size=resolution).eval())
    x = torch.randn(batch, 3, resolution, resolution)

    def run() -> object:
        with torch.inference_mode():
            return model(x)
    return run


def lsnet_t_fused_bs1() -> Callable[[], object]:
    """LSNet-T fused forward, batch 1, 224 px."""
    return _fused_forward("lsnet_t", 1)


def lsnet_t_fused_bs8() -> Callable[[], object]:
    """LSNet-T fused forward, batch 8, 224 px."""
    return _fused_forward("lsnet_t", 8)


def repvit_m0_9_fused_bs1() -> Callable[[], object]:
    """RepViT-M0.9 fused forward, batch 1, 224 px (a baseline through the same zoo)."""
    return _fused_forward("repvit_m0_9", 1)


def lsnet_t_train_step_bs8() -> Callable[[], object]:
    """One LSNet-T training step (SGD, cross-entropy), batch 8, 128 px."""
    from suites.core import zoo
    torch.manual_seed(0)
    model = zoo.create("lsnet_t", img_size=128).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(8, 3, 128, 128), torch.randint(0, 1000, (8,))

    def run() -> object:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        opt.step()
        return loss
    return run


CASES: dict[str, Case] = {f.__name__: f for f in (
    ska_torch_forward, ska_torch_forward_backward, lsnet_t_fused_bs1, lsnet_t_fused_bs8, repvit_m0_9_fused_bs1,
    lsnet_t_train_step_bs8)}
