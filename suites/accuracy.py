"""Accuracy suite: top-1 from one labelled source per row (``top1_source``), never mixed silently.

``--dataset`` picks the source:

- ``imagefolder`` (``measured:<folder name>``): a checkpoint (``--checkpoint``, or one file per model in
  ``--checkpoint-dir``; LSNet's official files and timm-format files of every baseline: any format
  ``baselines.load_checkpoint`` takes) evaluated on ``--data`` (ImageFolder layout) with the official
  preprocessing, through the cell's engine; top-1/top-5 in percent.
- ``proxy`` (``proxy:v<version>-seed<seed>-<steps>steps``): the generated spatial task of
  :mod:`suites.core.proxy_task`, trained from scratch in eager PyTorch for a fixed step budget.
- ``published`` (``published:imagenet-1k``): ImageNet-1k top-1 from ``suites/core/data/published.csv``;
  the tag and citation go into ``extra``.

``dataset`` defaults to ``imagefolder`` when ``--data`` is given.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from suites import engines
from suites.core import zoo
from suites.core.cell import Cell, Context
from suites.core.counting import count_params
from suites.core.devices import is_cuda
from suites.core.registry import Suite, register

DATASETS = ("imagefolder", "proxy", "published")


@dataclass(frozen=True)
class Options:
    """The accuracy suite's options (``--dataset``, ``--data``, ...)."""
    dataset: str | None = field(default=None, metadata={"help": "accuracy: source of top-1", "choices": DATASETS})
    data: str | None = field(default=None, metadata={"help": "accuracy: ImageFolder dataset folder"})
    checkpoint: str | None = field(default=None, metadata={"help": "accuracy: checkpoint path (.pth, .bin or "
                                                                   ".safetensors; timm's format for baselines)"})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "accuracy: a folder with one checkpoint per "
                                                                       "model, named MODEL.pth|.pt|.bin|.safetensors"})
    num_classes: int | None = field(default=None, metadata={"max": 100_000, "help": "accuracy: classifier classes "
                                                                    "(default: the data folder's class count)"})
    crop_ratio: float = field(default=0.875, metadata={"help": "accuracy: centre-crop ratio (official 224/256)"})
    workers: int | None = field(default=None, metadata={"max": 256, "help": "accuracy: data-loader workers (default: up to 8)"})
    eval_batch_size: int | None = field(default=None, metadata={"max": 65_536, "help": "accuracy: evaluation batch "
                                                                        "(default: the cell's batch size)"})
    tag: str | None = field(default=None, metadata={"help": "accuracy published: the published tag to use"})
    proxy_steps: int | None = field(default=None, metadata={"max": 100_000, "help": "accuracy proxy: training steps (default 150)"})
    proxy_seed: int | None = field(default=None, metadata={"help": "accuracy proxy: data and init seed (default 0)"})
    proxy_n_train: int | None = field(default=None, metadata={"max": 1_000_000, "help": "accuracy proxy: training images"})
    proxy_n_test: int | None = field(default=None, metadata={"max": 1_000_000, "help": "accuracy proxy: held-out test images"})
    proxy_batch_size: int | None = field(default=None, metadata={"max": 65_536, "help": "accuracy proxy: training batch size"})

    @property
    def source(self) -> str | None:
        """The dataset kind actually used (``imagefolder`` when only ``data`` is given)."""
        return self.dataset or ("imagefolder" if self.data else None)

    def ignored(self) -> list[str]:
        """Why each given option has no effect with this source (a warning each, before any cell)."""
        out = []
        if self.source in ("proxy", "published"):
            out += [f"--{name.replace('_', '-')} is ignored with --dataset {self.source} (it reads an ImageFolder "
                    f"with a checkpoint: --data DIR --checkpoint PATH)"
                    for name in ("checkpoint", "checkpoint_dir", "data", "workers", "eval_batch_size", "num_classes")
                    if getattr(self, name) is not None]
        if self.source != "proxy":
            out += [f"--{name.replace('_', '-')} is ignored: only --dataset proxy trains the proxy task"
                    for name in ("proxy_steps", "proxy_seed", "proxy_n_train", "proxy_n_test", "proxy_batch_size")
                    if getattr(self, name) is not None]
        if self.source != "published" and self.tag is not None:
            out.append("--tag is ignored: only --dataset published looks up a published figure")
        return out

    def validate(self) -> None:
        """Raise ValueError naming the problem and the fix for options no cell could run with."""
        if self.source is None:
            raise ValueError("suite 'accuracy' needs --data DIR (with --checkpoint PATH) or --dataset proxy|published")
        if self.source == "imagefolder":
            if not self.data:
                raise ValueError("--dataset imagefolder needs --data DIR (an ImageFolder: one folder per class)")
            if self.checkpoint and self.checkpoint_dir:
                raise ValueError("give --checkpoint PATH (one model) or --checkpoint-dir DIR (one file per model), "
                                 "not both")
            if self.checkpoint_dir and not Path(self.checkpoint_dir).is_dir():
                raise ValueError(f"--checkpoint-dir {self.checkpoint_dir} is not a folder")
            if not self.checkpoint and not self.checkpoint_dir:
                raise ValueError("accuracy on --data needs --checkpoint PATH (random weights would only measure "
                                 "chance); or use --dataset proxy|published")
        for name in ("num_classes", "workers", "eval_batch_size", "proxy_steps", "proxy_n_train", "proxy_n_test",
                     "proxy_batch_size"):
            v = getattr(self, name)
            if v is not None and v <= 0 and not (name == "workers" and v == 0):
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {v}")
        if not 0 < self.crop_ratio <= 1:
            raise ValueError(f"--crop-ratio must be in (0, 1], got {self.crop_ratio}")


def run(cell: Cell, ctx: Context) -> dict[str, Any]:
    """Measure (or look up) the top-1 of ``cell.model``; see the module docstring for the sources."""
    opts: Options = cell.opts
    opts.validate()
    return {"imagefolder": _imagefolder, "proxy": _proxy, "published": _published}[opts.source](cell, ctx)


CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def checkpoint_of(cell: Cell) -> str | None:
    """The checkpoint the cell's model is evaluated with: ``--checkpoint``, else its file in ``--checkpoint-dir``
    (``MODEL`` + one of :data:`CHECKPOINT_SUFFIXES`, ``:`` and ``/`` of brought models' names as ``_``)."""
    opts: Options = cell.opts
    if opts.checkpoint or not opts.checkpoint_dir:
        return opts.checkpoint
    stem = cell.model.replace(":", "_").replace("/", "_")
    found = [p for p in (Path(opts.checkpoint_dir) / (stem + s) for s in CHECKPOINT_SUFFIXES) if p.is_file()]
    return str(found[0]) if found else None


def skip_reason(cell: Cell) -> str | None:
    """Proxy and published accuracy are measured once, with the eager engine; a published figure must exist;
    a model needs its file in ``--checkpoint-dir``."""
    opts: Options = cell.opts
    if opts.source == "imagefolder" and opts.checkpoint_dir and checkpoint_of(cell) is None:
        stem = cell.model.replace(":", "_").replace("/", "_")
        return (f"no checkpoint for {cell.model} in {opts.checkpoint_dir} (looked for "
                f"{', '.join(stem + s for s in CHECKPOINT_SUFFIXES)})")
    if opts.source == "imagefolder" and cell.hw[0] != cell.hw[1]:
        return (f"the ImageNet evaluation (resize, centre crop) is square; --resolution {cell.resolution_text} is not "
                "(give one size, e.g. --resolution 224)")
    if cell.dtype == "int8" and opts.source == "published":
        return "published top-1 is a float figure; int8 top-1 is measured with --dataset proxy or --data DIR"
    if opts.source != "imagefolder" and cell.engine != "eager" and not (opts.source == "proxy" and cell.dtype == "int8"):
        return (f"{opts.source} accuracy does not depend on the engine; it is measured with --engine eager"
                + (" (or --dtype int8 through onnxruntime/openvino)" if opts.source == "proxy" else ""))
    if opts.source == "published":
        from suites.core import published
        if published.lookup(cell.model, opts.tag) is None:   # not a failure: e.g. the mixer variants
            return (f"no published ImageNet top-1 for {cell.model!r} in suites/core/data/published.csv (models with "
                    f"one: {', '.join(published.models())})")
    return None


def _params_m(model: torch.nn.Module) -> float:
    return round(count_params(model) / 1e6, 4)


def _published(cell: Cell, ctx: Context) -> dict[str, Any]:
    from suites.core import published
    pub = published.lookup(cell.model, cell.opts.tag)
    row: dict[str, Any] = {"top1": pub.top1, "top1_source": "published:imagenet-1k",
                           "extra": {"tag": pub.tag, "eval_img_size": pub.eval_img_size, "top5": pub.top5, "source": pub.cited,
                                     "published_params_m": pub.params_m, "published_gmacs": pub.gmacs}}
    with contextlib.suppress(ValueError):  # a published model not in the zoo has no counted params
        row["params_m"] = _params_m(zoo.create(cell.model, num_classes=1000, img_size=224))
    return row


def _proxy(cell: Cell, ctx: Context) -> dict[str, Any]:
    from suites.core import proxy_task
    o = cell.opts
    cfg = proxy_task.ProxyConfig.from_options({k: v for k, v in dataclasses.asdict(o).items() if k.startswith("proxy_")})
    if cell.dtype == "int8":
        return _proxy_int8(cell, ctx, cfg)
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    model = zoo.create(cell.model, num_classes=proxy_task.N_CLASSES, img_size=cfg.img_size)
    params = _params_m(model)
    res = proxy_task.run_proxy(model, cfg, progress=ctx.progress)
    extra = {"top5": res["top5"], "budget": {"steps": cfg.steps, "batch_size": cfg.batch_size,
                                             "optimizer": "AdamW", "lr": cfg.lr, "train_s": res["train_s"]},
             "seed": cfg.seed, "task": res["config"], "final_loss": res["final_loss"],
             "n_images": cfg.n_test, "gen_s": res["gen_s"], "eval_s": res["eval_s"]}
    extra.update(img_size=cfg.img_size, train_batch_size=cfg.batch_size, fused=False)
    return {"top1": res["top1"], "top1_source": cfg.label(), "params_m": params, "extra": extra}


def _proxy_int8(cell: Cell, ctx: Context, cfg: Any) -> dict[str, Any]:
    """The proxy task's model trained in eager float32 (as for the float rows; kept under ``artifacts/`` and
    reused by the other engine's cell), quantised by the cell's engine with proxy-generator calibration
    images, and evaluated on the held-out split: the int8 top-1 beside the float32 one."""
    import json

    from suites.core import proxy_task
    stem = f"{cell.model.replace(':', '_').replace('/', '_')}_{cfg.label().replace(':', '-')}"
    ckpt, meta = ctx.artifacts / f"{stem}.pt", ctx.artifacts / f"{stem}.json"
    if ckpt.is_file() and meta.is_file():
        res = json.loads(meta.read_text())
    else:
        torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
        model = zoo.create(cell.model, num_classes=proxy_task.N_CLASSES, img_size=cfg.img_size)
        res = proxy_task.run_proxy(model, cfg, progress=ctx.progress)
        res["params_m"] = _params_m(model)
        tmp = ckpt.with_name(f".{ckpt.name}.{os.getpid()}.tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(ckpt)
        meta.write_text(json.dumps(res, default=str))
    data = proxy_task.make_data(dataclasses.replace(cfg, n_train=0))
    qcell = cell.with_(resolution=cfg.img_size, calib_source="proxy")   # the task's images, at its size
    c1 = c5 = 0
    with engines.get(cell.engine).prepare(qcell, ctx, num_classes=proxy_task.N_CLASSES, checkpoint=str(ckpt),
                                          strict=False) as step:
        for i in range(0, len(data.x_test), cell.batch_size):
            top5 = step.infer(proxy_task.to_input(data.x_test[i:i + cell.batch_size])).topk(5, dim=1).indices
            t = data.y_test[i:i + cell.batch_size, None]
            c1 += int((top5[:, :1] == t).sum())
            c5 += int((top5 == t).any(dim=1).sum())
        info, parity, failure = step.info, step.parity_rel, step.parity_failure
    n = len(data.x_test)
    extra = {"top5": 100 * c5 / n, "top5_float32": res["top5"], "seed": cfg.seed, "task": res["config"],
             "budget": {"steps": cfg.steps, "batch_size": cfg.batch_size, "optimizer": "AdamW", "lr": cfg.lr,
                        "train_s": res["train_s"]},
             "n_images": n, "img_size": cfg.img_size, "trained_checkpoint": ckpt.name,
             "float32": "eager PyTorch, the same trained weights", **info}
    extra["int8"] = {**extra.get("int8", {}), "top1": 100 * c1 / n, "top1_float32": res["top1"],
                     "top1_delta": 100 * c1 / n - res["top1"]}
    return _judged({"top1": 100 * c1 / n, "top1_float32": res["top1"], "top1_source": cfg.label(),
                    "params_m": res.get("params_m"), "parity_rel": parity, "extra": extra}, failure)


def _judged(row: dict[str, Any], parity_failure: str | None) -> dict[str, Any]:
    """``row``, an error row when the engine failed parity: the top-1 measured through it stays in the row
    (how much accuracy the failing form loses is the figure its user needs)."""
    if parity_failure:
        row.update(status="error", error=f"{parity_failure}; top-1 {row['top1']:.2f}% measured through it "
                                         f"anyway (in the row)")
    return row


def _imagefolder(cell: Cell, ctx: Context) -> dict[str, Any]:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from suites.core.imagefolder import EvalTransform, ImageFolderDataset

    o: Options = cell.opts
    transform = EvalTransform(cell.resolution, o.crop_ratio)
    ds = ImageFolderDataset(o.data, transform)
    n_classes = o.num_classes or len(ds.classes)
    if len(ds.classes) != n_classes:
        raise ValueError(f"data folder {o.data} has {len(ds.classes)} class folders but the model has "
                         f"{n_classes} classes; class indices follow the sorted folder names, so the folder must "
                         f"hold one folder per class (empty folders are fine for classes without images) "
                         f"or --num-classes must match")
    workers = o.workers if o.workers is not None else min(8, os.cpu_count() or 1)
    batch = o.eval_batch_size or cell.batch_size
    loader = DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                        pin_memory=is_cuda(cell.device), persistent_workers=False)
    k = min(5, n_classes)
    c1 = c5 = n_ok = 0
    bad: list[str] = []
    checkpoint = checkpoint_of(cell)
    float_model, c1_float = None, 0       # int8: the eager float32 model on the same images, beside it
    if cell.dtype == "int8":
        from suites.engines import quantize
        float_model = quantize.float_model(cell, num_classes=n_classes, checkpoint=checkpoint)
    with engines.get(cell.engine).prepare(cell, ctx, num_classes=n_classes, checkpoint=checkpoint,
                                          strict=False) as step:
        bar = tqdm(loader, desc=f"{cell.model} {Path(o.data).name}", unit="batch",
                   disable=None if ctx.progress else True, leave=False)  # None: off without a TTY
        for x, y, ok, idx in bar:
            bad += [ds.samples[i][0] for i in idx[~ok].tolist()]
            if not ok.any():
                continue
            y = y[ok]
            topk = step.infer(x[ok]).topk(k, dim=1).indices
            c1 += int((topk[:, 0] == y).sum())
            c5 += int((topk == y[:, None]).any(dim=1).sum())
            if float_model is not None:
                with torch.inference_mode():
                    c1_float += int((float_model(x[ok]).argmax(dim=1) == y).sum())
            n_ok += len(y)
            bar.set_postfix(top1=f"{100 * c1 / n_ok:.2f}")
    if n_ok == 0:
        raise ValueError(f"data folder {o.data}: none of the {len(bad)} images could be read "
                         f"(e.g. {bad[0]}); are they images?")
    if bad:
        print(f"warning: {len(bad)} unreadable images in {o.data} were skipped (e.g. {bad[0]})", file=sys.stderr)
    extra = {"top5": 100 * c5 / n_ok if n_classes >= 5 else None, "n_images": n_ok, "n_unreadable": len(bad),
             "unreadable_examples": bad[:20], "n_classes": n_classes, "data": str(Path(o.data).resolve()),
             "checkpoint": str(Path(checkpoint).resolve()), "crop_ratio": transform.crop_ratio,
             "eval_batch_size": batch, "workers": workers, **step.info}
    row = {"top1": 100 * c1 / n_ok, "top1_source": f"measured:{Path(o.data).resolve().name}",
           "params_m": _params_m(zoo.create(cell.model, num_classes=n_classes, img_size=cell.resolution)),
           "extra": extra}
    if float_model is not None:
        row["top1_float32"], row["parity_rel"] = 100 * c1_float / n_ok, step.parity_rel
        extra["int8"] = {**extra.get("int8", {}), "top1": row["top1"], "top1_float32": row["top1_float32"],
                         "top1_delta": row["top1"] - row["top1_float32"]}
    return _judged(row, step.parity_failure)


SUITE = register(Suite("accuracy", run, __name__, "top-1 on an ImageFolder, the proxy task, or published figures",
                       plan="largest_batch", default_batch_sizes=(64,), options=Options, skip=skip_reason,
                       tasks=("classify",), tasks_why="top-1 is a classifier's figure (published dense-prediction "
                       "figures are in the report's dense section)"))
