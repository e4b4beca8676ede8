"""The benchmark cases: each builds, from the public API only, a callable to time.

The gate times every case of ``CASES``; the pytest-benchmark tests in ``tests/benchmarks/`` time the
same ``CASES`` and, through the same builders, the variants that are not gated (the unfold
``reference`` SKA, whose speed swings with the allocator; other shapes and models). The gate loads
this file in both trees of its A/B comparison, while ``lsnet``, ``suites`` and ``baselines`` are
imported from each side's own tree, so a case measures that side's code. The file itself imports
nothing of the project: a tree lacking a module makes only the cases that need it NEW; LSNet cases
need only ``lsnet``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import torch

Case = partial[Callable[[], object]]    # a builder with its arguments bound: calling it builds the callable
BACKENDS = ("backend", "ska_backend")   # the parameters compared side by side within a benchmark group


def _ska_inputs(n: int, c: int, h: int, cw: int, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, h, generator=g).requires_grad_(grad)
    w = torch.randn(n, cw, 9, h, h, generator=g).requires_grad_(grad)
    return x, w


def ska_forward(n: int, c: int, h: int, cw: int, backend: str = "torch") -> Callable[[], object]:
    """SKA forward of x (n, c, h, h) with weights (n, cw, 9, h, h)."""
    from lsnet.ops import ska
    x, w = _ska_inputs(n, c, h, cw)

    def run() -> object:
        with torch.inference_mode():
            return ska(x, w, backend)
    return run


def ska_forward_backward(n: int, c: int, h: int, cw: int, backend: str = "torch") -> Callable[[], object]:
    """SKA forward and backward (dx, dw) of x (n, c, h, h) with weights (n, cw, 9, h, h)."""
    from lsnet.ops import ska
    x, w = _ska_inputs(n, c, h, cw, grad=True)
    gy = torch.randn_like(x)
    return lambda: torch.autograd.grad(ska(x, w, backend), (x, w), gy)


def _create(name: str, resolution: int) -> torch.nn.Module:
    """LSNet models from ``lsnet`` alone, so that their cases run against any base; others from the zoo."""
    import lsnet
    if name in lsnet.list_models():
        return lsnet.create_model(name, img_size=resolution)
    from suites.core import zoo
    return zoo.create(name, img_size=resolution)


def fused_forward(name: str, batch: int, resolution: int = 224, ska_backend: str | None = None) -> Callable[[], object]:
    """Fused eval forward of model ``name`` (its SKA backend set when ``ska_backend`` is given)."""
    import lsnet
    torch.manual_seed(0)
    model = lsnet.fuse(_create(name, resolution).eval())
    if ska_backend is not None:
        lsnet.set_ska_backend(model, ska_backend)
    x = torch.randn(batch, 3, resolution, resolution)

    def run() -> object:
        with torch.inference_mode():
            return model(x)
    return run


def train_step(name: str, batch: int, resolution: int) -> Callable[[], object]:
    """One training step of model ``name`` (SGD with momentum 0.9, cross-entropy)."""
    torch.manual_seed(0)
    model = _create(name, resolution).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, resolution, resolution), torch.randint(0, 1000, (batch,))

    def run() -> object:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        opt.step()
        return loss
    return run


def params(case: Case) -> dict[str, object]:
    """The builder arguments of ``case``, defaults filled in (equal builders and params: the same benchmark)."""
    bound = inspect.signature(case.func).bind(*case.args, **case.keywords)
    bound.apply_defaults()
    return dict(bound.arguments)


def group(case: Case) -> str:
    """The benchmark group of ``case``: its builder and arguments but the backend, so backends compare."""
    shown = " ".join(f"{k}={v}" for k, v in params(case).items() if k not in BACKENDS)
    return f"{case.func.__name__} {shown}"


CASES: dict[str, Case] = {
    "ska_torch_forward": partial(ska_forward, 16, 128, 14, 16),              # LSNet-T stage 2, batch 16
    "ska_torch_forward_backward": partial(ska_forward_backward, 8, 128, 14, 16),   # stage 2, batch 8
    "lsnet_t_fused_bs1": partial(fused_forward, "lsnet_t", 1),
    "lsnet_t_fused_bs8": partial(fused_forward, "lsnet_t", 8),
    "repvit_m0_9_fused_bs1": partial(fused_forward, "repvit_m0_9", 1),      # a baseline through the zoo
    "lsnet_t_train_step_bs8": partial(train_step, "lsnet_t", 8, 128),
}
