"""Accuracy suite: top-1 from one labelled source per row (``top1_source``), never mixed silently.

``cell.options["dataset"]`` picks the source:

- ``imagefolder`` (``measured``): a checkpoint (``options["checkpoint"]``, any format
  ``lsnet.load_checkpoint`` takes) evaluated on ``options["data"]`` (ImageFolder layout) with the
  official preprocessing; top-1/top-5 in percent. Source ``measured:<folder name>``.
- ``proxy``: the generated spatial task of :mod:`suites.proxy_task`, trained from scratch for a fixed
  step budget. Source ``proxy:v<version>-seed<seed>-<steps>steps``.
- ``published``: ImageNet-1k top-1 from ``reports/data/published.csv``. Source ``published:imagenet-1k``;
  the tag and citation go into ``extra``.

Defaults: ``dataset`` is ``imagefolder`` when ``data`` is given. Other options: ``num_classes``,
``crop_ratio`` (224/256), ``eval_batch_size`` (default ``cell.batch_size``), ``workers`` (up to 8), ``progress`` (True: a bar when stderr is a terminal),
``proxy_seed``, ``proxy_steps`` (any ``proxy_<ProxyConfig field>``), ``tag`` (published).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

from suites import runtime, zoo
from suites.cell import Cell
from suites.counting import count_params

DATASETS = ("imagefolder", "proxy", "published")
_ALIASES = {"measured": "imagefolder", "folder": "imagefolder"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def run(cell: Cell) -> dict[str, Any]:
    """Measure (or look up) the top-1 of ``cell.model``; see the module docstring for the sources."""
    opts = cell.options
    dataset = opts.get("dataset") or ("imagefolder" if opts.get("data") else None)
    dataset = _ALIASES.get(dataset, dataset)
    if dataset not in DATASETS:
        raise ValueError(f"accuracy suite: dataset {opts.get('dataset')!r} is not one of {', '.join(DATASETS)}; "
                         "pass --data DIR --checkpoint PATH for measured accuracy, or --dataset proxy|published")
    before = torch.get_num_threads()
    if cell.threads:
        torch.set_num_threads(cell.threads)
    try:
        return {"imagefolder": _imagefolder, "proxy": _proxy, "published": _published}[dataset](cell)
    finally:
        torch.set_num_threads(before)


def _params_m(model: torch.nn.Module) -> float:
    return round(count_params(model) / 1e6, 4)


def _published(cell: Cell) -> dict[str, Any]:
    from reports import published
    pub = published.lookup(cell.model, cell.options.get("tag"))
    if pub is None:  # not a failure: e.g. the mixer variants were never published
        return {"status": "skipped", "error": f"no published ImageNet top-1 for {cell.model!r} in "
                                              f"reports/data/published.csv (models with one: {', '.join(published.models())})"}
    row: dict[str, Any] = {"top1": pub.top1, "top1_source": "published:imagenet-1k", "resolution": pub.eval_img_size,
                           "extra": {"tag": pub.tag, "top5": pub.top5, "source": pub.cited,
                                     "published_params_m": pub.params_m, "published_gmacs": pub.gmacs}}
    with contextlib.suppress(ValueError):  # a published model not in the zoo has no counted params
        row["params_m"] = _params_m(zoo.create(cell.model, num_classes=1000, img_size=224))
    return row


def _proxy(cell: Cell) -> dict[str, Any]:
    from suites import proxy_task
    o = cell.options
    cfg = proxy_task.ProxyConfig.from_options(o)
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    model = zoo.create(cell.model, num_classes=proxy_task.N_CLASSES, img_size=cfg.img_size)
    params = _params_m(model)
    res = proxy_task.run_proxy(model, cfg, progress=bool(o.get("progress", True)))
    extra = {"top5": res["top5"], "budget": {"steps": cfg.steps, "batch_size": cfg.batch_size,
                                             "optimizer": "AdamW", "lr": cfg.lr, "train_s": res["train_s"]},
             "seed": cfg.seed, "task": res["config"], "final_loss": res["final_loss"],
             "n_images": cfg.n_test, "gen_s": res["gen_s"], "eval_s": res["eval_s"]}
    return {"top1": res["top1"], "top1_source": cfg.label(), "params_m": params, "resolution": cfg.img_size,
            "batch_size": cfg.batch_size, "threads": res["threads"], "fused": False, "extra": extra}


def _imagefolder(cell: Cell) -> dict[str, Any]:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    import lsnet
    from suites.imagefolder import OFFICIAL_CROP_RATIO, EvalTransform, ImageFolderDataset

    o = cell.options
    if not o.get("data"):
        raise ValueError("accuracy suite (imagefolder): no data folder; pass --data DIR (ImageFolder layout)")
    if not o.get("checkpoint"):
        raise ValueError("accuracy suite (imagefolder): no checkpoint; pass --checkpoint PATH "
                         "(random weights would only measure chance), or use --dataset proxy|published")
    transform = EvalTransform(cell.resolution, float(o.get("crop_ratio", OFFICIAL_CROP_RATIO)))
    ds = ImageFolderDataset(o["data"], transform)
    n_classes = int(o.get("num_classes") or len(ds.classes))
    if len(ds.classes) != n_classes:
        raise ValueError(f"data folder {o['data']} has {len(ds.classes)} class folders but the model has "
                         f"{n_classes} classes; class indices follow the sorted folder names, so the folder must "
                         f"hold one folder per class (empty folders are fine for classes without images) "
                         f"or --num-classes must match")
    model = zoo.create(cell.model, num_classes=n_classes, img_size=cell.resolution)
    lsnet.load_checkpoint(model, o["checkpoint"])
    params = _params_m(model)
    if cell.fused:
        model = lsnet.fuse(model)
    device = torch.device(cell.device)
    dtype = _DTYPES.get(cell.dtype, torch.float32)
    model = model.to(device=device, dtype=dtype).eval()
    mem_fmt = torch.channels_last if cell.channels_last else torch.contiguous_format
    model = model.to(memory_format=mem_fmt)
    workers = int(o.get("workers", min(8, os.cpu_count() or 1)))
    batch = int(o.get("eval_batch_size") or cell.batch_size)
    loader = DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    k = min(5, n_classes)
    c1 = c5 = n_ok = 0
    bad: list[str] = []
    bar = tqdm(loader, desc=f"{cell.model} {Path(o['data']).name}", unit="batch",
               disable=None if o.get("progress", True) else True, leave=False)  # None: off without a TTY
    with runtime.inference_context(cell):
        for x, y, ok, idx in bar:
            bad += [ds.samples[i][0] for i in idx[~ok].tolist()]
            if not ok.any():
                continue
            x = x[ok].to(device, dtype, non_blocking=True).contiguous(memory_format=mem_fmt)
            y = y[ok].to(device)
            topk = model(x).float().topk(k, dim=1).indices
            c1 += int((topk[:, 0] == y).sum())
            c5 += int((topk == y[:, None]).any(dim=1).sum())
            n_ok += len(y)
            bar.set_postfix(top1=f"{100 * c1 / n_ok:.2f}")
    if n_ok == 0:
        raise ValueError(f"data folder {o['data']}: none of the {len(bad)} images could be read "
                         f"(e.g. {bad[0]}); are they images?")
    if bad:
        print(f"warning: {len(bad)} unreadable images in {o['data']} were skipped (e.g. {bad[0]})", file=sys.stderr)
    extra = {"top5": 100 * c5 / n_ok if n_classes >= 5 else None, "n_images": n_ok, "n_unreadable": len(bad),
             "unreadable_examples": bad[:20], "n_classes": n_classes, "data": str(Path(o["data"]).resolve()),
             "checkpoint": str(Path(o["checkpoint"]).resolve()), "crop_ratio": transform.crop_ratio,
             "eval_batch_size": batch, "workers": workers}
    return {"top1": 100 * c1 / n_ok, "top1_source": f"measured:{Path(o['data']).resolve().name}",
            "params_m": params, "extra": extra}
