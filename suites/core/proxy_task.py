"""The proxy accuracy task: a procedurally generated 10-class image task that needs spatial context.

Each image holds a white disc and a black disc on a noisy background of random colour, with coloured
square distractors. The class is the direction from the white disc to the black one, in ten 36-degree
sectors (angles kept away from sector borders, so labels are unambiguous). Both discs appear in every
image and the colours are independent of the class, so local colour or texture statistics carry no
label information: a model must relate two objects 14-38 px apart (on 64 px images), i.e. use spatial
context. Everything comes from seeded ``torch.Generator`` streams: the same seed gives the same images,
labels and train/test split on every machine with the same torch version.

Each model trains from scratch for a fixed number of AdamW steps (the budget, recorded with the
seed in the row) and is evaluated on held-out images. The default budget is 150 steps of 64 images
(AdamW, one-cycle LR 2e-3). Measured on 2 CPU threads: LSNet-T reaches 78.2% top-1 (seed 0; 82.9%
seed 1; chance 10%) in 53 s end to end; the static-mixer and attention variants of LSNet-T reach
88-90%. At 300 steps LSNet-T and the dwconv3 variant are at 92-95% (saturated), hence the lower default.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

VERSION = 1  # bump when the generator changes: results of different versions are not comparable
N_CLASSES = 10
CHUNK = 512  # images per generator; fixed, so the data never depends on memory settings


@dataclass(frozen=True)
class ProxyConfig:
    """The task and its training budget; every field is recorded in the result row's ``extra``."""
    seed: int = 0
    img_size: int = 64
    n_train: int = 8192
    n_test: int = 1024
    steps: int = 150
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.15
    distractors: int = 4

    def label(self) -> str:
        """Identifies comparable results, e.g. ``proxy:v1-seed0-150steps`` (plus a hash of any other
        setting that differs from the defaults)."""
        base = f"proxy:v{VERSION}-seed{self.seed}-{self.steps}steps"
        other = {k: v for k, v in asdict(self).items()
                 if k not in ("seed", "steps") and v != getattr(ProxyConfig, k)}
        if not other:
            return base
        return f"{base}-{hashlib.sha1(json.dumps(other, sort_keys=True).encode()).hexdigest()[:8]}"

    @classmethod
    def from_options(cls, options: dict) -> "ProxyConfig":
        """From cell options ``proxy_<field>`` (e.g. ``proxy_seed``, ``proxy_steps``); defaults otherwise."""
        return cls(**{f.name: type(getattr(cls, f.name))(options[f"proxy_{f.name}"])
                      for f in fields(cls) if options.get(f"proxy_{f.name}") is not None})


def _generate(n: int, size: int, distractors: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8, n x 3 x size x size) and labels, drawn from ``g``."""
    s = size / 64
    ys = torch.arange(size, dtype=torch.float32).view(1, size, 1) + 0.5
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, size) + 0.5
    label = torch.randint(0, N_CLASSES, (n,), generator=g)
    sector = 2 * math.pi / N_CLASSES
    ang = (label + 0.5 + 0.7 * (torch.rand(n, generator=g) - 0.5)) * sector  # central 70% of the sector
    r = 5.0 * s
    dist = size * (0.22 + 0.38 * torch.rand(n, generator=g))
    dx, dy = dist * torch.cos(ang), -dist * torch.sin(ang)  # image y grows downwards
    lo = r + 1
    ax = lo + torch.rand(n, generator=g) * (size - 2 * lo - dx.abs()) - dx.clamp(max=0)
    ay = lo + torch.rand(n, generator=g) * (size - 2 * lo - dy.abs()) - dy.clamp(max=0)
    img = 0.35 + 0.3 * torch.rand(n, 3, 1, 1, generator=g) + 0.08 * torch.randn(n, 3, size, size, generator=g)
    for _ in range(distractors):
        cx, cy = (torch.rand(n, 1, 1, generator=g) * size for _ in range(2))
        half = (2 + 3 * torch.rand(n, 1, 1, generator=g)) * s
        inside = (((xs - cx).abs() < half) & ((ys - cy).abs() < half)).unsqueeze(1)
        col = 0.15 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)  # never pure white or black
        img = torch.where(inside, col, img)

    def disc(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
        return (((xs - cx.view(-1, 1, 1)) ** 2 + (ys - cy.view(-1, 1, 1)) ** 2) < r * r).unsqueeze(1)

    img = torch.where(disc(ax, ay), 1.0, img)
    img = torch.where(disc(ax + dx, ay + dy), 0.0, img)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), label


@dataclass
class ProxyData:
    """The generated split: uint8 images and int64 labels."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _images(cfg: ProxyConfig, part: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``part`` (train/test): whole fixed-size chunks, each from its own seeded generator,
    cut to ``n``, so image ``i`` never depends on ``n``."""
    xs, ys = [], []
    for c, start in enumerate(range(0, n, CHUNK)):
        g = torch.Generator().manual_seed(zlib.crc32(f"proxy-v{VERSION}/{cfg.seed}/{part}/{c}".encode()))
        x, y = _generate(CHUNK, cfg.img_size, cfg.distractors, g)
        xs.append(x[:n - start])
        ys.append(y[:n - start])
    if not xs:
        return torch.empty(0, 3, cfg.img_size, cfg.img_size, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return torch.cat(xs), torch.cat(ys)


def make_data(cfg: ProxyConfig = ProxyConfig()) -> ProxyData:
    """Generate the task for ``cfg.seed``: train and test images come from separate seeded streams, so
    the same seed gives the same split, and the test set does not depend on ``n_train``."""
    return ProxyData(*_images(cfg, "train", cfg.n_train), *_images(cfg, "test", cfg.n_test))


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> normalised float input (mean 0.5, std 0.25 per channel)."""
    return (x.float() / 255 - 0.5) / 0.25


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> tuple[float, float]:
    """(top-1, top-5) in percent of ``model`` (put in eval mode) on uint8 images ``x``."""
    model.eval()
    c1 = c5 = 0
    for i in range(0, len(x), batch_size):
        logits = model(to_input(x[i:i + batch_size]))
        top5 = logits.topk(5, dim=1).indices
        t = y[i:i + batch_size, None]
        c1 += (top5[:, :1] == t).sum().item()
        c5 += (top5 == t).any(dim=1).sum().item()
    return 100 * c1 / len(x), 100 * c5 / len(x)


def train(model: nn.Module, data: ProxyData, cfg: ProxyConfig, progress: bool = False) -> list[float]:
    """Train ``model`` in place for ``cfg.steps`` AdamW steps (one-cycle LR); returns the loss per step."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=cfg.warmup_frac)
    n = len(data.x_train)
    perm, pos, losses = torch.randperm(n, generator=g), 0, []
    model.train()
    steps = range(cfg.steps)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="proxy train", unit="step", leave=False, disable=None)  # None: off without a TTY
    for _ in steps:
        if pos + cfg.batch_size > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        out = model(to_input(data.x_train[idx]))
        if isinstance(out, tuple):  # distilled models train both heads on the labels
            loss = sum(F.cross_entropy(o, data.y_train[idx]) for o in out) / len(out)
        else:
            loss = F.cross_entropy(out, data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def run_proxy(model: nn.Module, cfg: ProxyConfig = ProxyConfig(), data: ProxyData | None = None,
              progress: bool = False) -> dict:
    """Generate (unless given), train, evaluate: top1, top5 (percent) and what was spent."""
    t0 = time.perf_counter()
    data = data if data is not None else make_data(cfg)
    t1 = time.perf_counter()
    losses = train(model, data, cfg, progress)
    t2 = time.perf_counter()
    top1, top5 = evaluate(model, data.x_test, data.y_test)
    return {"top1": top1, "top5": top5, "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "config": asdict(cfg) | {"version": VERSION}, "gen_s": t1 - t0, "train_s": t2 - t1,
            "eval_s": time.perf_counter() - t2, "threads": torch.get_num_threads()}
