"""Published ImageNet-1k facts (top-1, top-5, params, MACs, throughput) from the project's data file.

``suites/core/data/published.csv`` holds the published figures (papers, official READMEs, timm): one row per
(model, tag), with the source of every figure. When a model has several tags, :func:`lookup` picks
one by a fixed rule (see :func:`choose_tag`) and the tag is recorded in the returned source text.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

DATA_FILE = "data/published.csv"


@dataclass(frozen=True)
class Published:
    """One published row: ImageNet-1k accuracy (percent) and what it was measured with."""
    model: str
    tag: str
    top1: float
    top5: float | None
    params_m: float | None
    gmacs: float | None
    eval_img_size: int | None
    source: str

    @property
    def distilled(self) -> bool:
        """True when the figure comes from knowledge-distillation training (a tag containing ``dist``)."""
        return "dist" in self.tag

    @property
    def cited(self) -> str:
        """The source text with the tag, e.g. ``"lsnet_t (tag in1k): official LSNet README ..."``."""
        return f"{self.model} (tag {self.tag}, eval {self.eval_img_size}px): {self.source}"


def _num(s: str) -> float | None:
    return float(s) if s.strip() else None


@lru_cache(maxsize=1)
def load() -> tuple[Published, ...]:
    """Every row of the data file, in file order."""
    text = resources.files("suites.core").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = []
    for r in csv.DictReader(text.splitlines()):
        size = _num(r["eval_img_size"])
        rows.append(Published(model=r["model"], tag=r["tag"], top1=float(r["imagenet_top1"]),
                              top5=_num(r["imagenet_top5"]), params_m=_num(r["params_m"]),
                              gmacs=_num(r["gmacs_224_fvcore"]), eval_img_size=int(size) if size else None,
                              source=r["source"]))
    return tuple(rows)


def _epochs(tag: str) -> int:
    m = re.search(r"(\d+)e(?:_|$)", tag)
    return int(m.group(1)) if m else 0


def choose_tag(name: str, tags: list[str]) -> str:
    """The tag :func:`lookup` uses for ``name`` among ``tags``.

    Rule: a ``*_distill`` name takes a distilled tag (containing ``dist``); a plain name takes a
    non-distilled tag when one exists (e.g. fastvit ``apple_in1k``), otherwise a distilled one
    (RepViT is only published distilled). Among the candidates, the shortest training schedule
    wins (``dist_300e_in1k`` over ``dist_450e_in1k``: the standard 300-epoch protocol), then file order.
    """
    want_dist = name.endswith("_distill")
    preferred = [t for t in tags if ("dist" in t) == want_dist]
    pool = preferred or tags
    return min(pool, key=lambda t: (_epochs(t), tags.index(t)))


def lookup(name: str, tag: str | None = None) -> Published | None:
    """The published row of model ``name`` (``tag`` or the rule of :func:`choose_tag`); None if absent.

    A ``*_distill`` name is found under its own name first, then under its base name.
    """
    rows = load()
    for key in dict.fromkeys((name, name.removesuffix("_distill"))):
        cands = [r for r in rows if r.model == key]
        if not cands:
            continue
        if tag is not None:
            hit = [r for r in cands if r.tag == tag]
            if not hit:
                raise ValueError(f"no published row for {key!r} with tag {tag!r}; "
                                 f"tags: {', '.join(r.tag for r in cands)}")
            return hit[0]
        chosen = choose_tag(name, [r.tag for r in cands])
        if key != name and "dist" not in chosen:
            continue  # a _distill name must not silently get the non-distilled figure
        return next(r for r in cands if r.tag == chosen)
    return None


def models() -> list[str]:
    """Model names with at least one published row."""
    return list(dict.fromkeys(r.model for r in load()))


# ---- published dense-prediction figures (COCO detection / instance segmentation, ADE20K semantic segmentation)

DENSE_FILE = "data/published_dense.csv"
# the recipe a figure was obtained with (the data file's ``task``) -> the measured task whose cost goes with it:
# detectors and Mask R-CNN put their own neck and heads on the backbone's feature maps (``features``); the
# Semantic FPN is what the ``segment`` task builds
DENSE_TASKS = {"retinanet": "features", "mask_rcnn": "features", "semantic_fpn": "segment"}
DENSE_RECIPES = {"retinanet": "RetinaNet", "mask_rcnn": "Mask R-CNN", "semantic_fpn": "Semantic FPN"}
DENSE_DATASETS = {"coco": "COCO", "ade20k": "ADE20K"}
DENSE_METRICS = {"box_ap": "box AP", "box_ap50": "box AP50", "box_ap75": "box AP75", "mask_ap": "mask AP",
                 "miou": "mIoU"}


@dataclass(frozen=True)
class PublishedDense:
    """One published downstream figure: ``value`` of ``metric`` (percent) for backbone ``model`` trained with
    ``recipe`` (the data file's ``task``: retinanet, mask_rcnn, semantic_fpn) on ``dataset`` at ``input_size``
    (as the paper states it, e.g. mmdet's ``1333x800`` scale or ``512x512`` crops), with its source."""
    model: str
    paper_name: str
    recipe: str
    dataset: str
    metric: str
    value: float
    schedule: str
    input_size: str
    source: str
    framework: str = ""
    backbone_params_m: float | None = None

    @property
    def task(self) -> str | None:
        """The measured task whose cost this figure goes with (``features`` or ``segment``; None if unknown)."""
        return DENSE_TASKS.get(self.recipe)

    @property
    def label(self) -> str:
        """``Semantic FPN ADE20K mIoU`` / ``RetinaNet COCO box AP (1x)``: the figure's kind in words."""
        sched = f" ({self.schedule})" if self.schedule else ""
        dataset = DENSE_DATASETS.get(self.dataset.lower(), self.dataset)
        return f"{DENSE_RECIPES.get(self.recipe, self.recipe)} {dataset} {DENSE_METRICS.get(self.metric, self.metric)}{sched}"

    @property
    def cited(self) -> str:
        """The source text with the paper's model name and input size."""
        return f"{self.paper_name or self.model} ({self.label}, {self.input_size}): {self.source}"


@lru_cache(maxsize=1)
def load_dense() -> tuple[PublishedDense, ...]:
    """Every row of ``suites/core/data/published_dense.csv`` (file order); empty when the file is absent.

    Columns: ``model`` (the zoo name where the model is in the zoo, else the paper's in snake case),
    ``paper_name``, ``task`` (the recipe: retinanet, mask_rcnn, semantic_fpn), ``dataset``, ``metric`` (box_ap,
    box_ap50, box_ap75, mask_ap, miou), ``value`` (percent), ``framework``, ``schedule``, ``input_size``,
    ``backbone_params_m``, ``source``. Rows without a number in ``value`` are left out.
    """
    path = resources.files("suites.core").joinpath(DENSE_FILE)
    if not path.is_file():
        return ()
    rows = []
    for r in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
        try:
            value = float(r.get("value") or "")
        except ValueError:
            continue
        params = (r.get("backbone_params_m") or "").strip()
        try:
            params_m = float(params) if params else None
        except ValueError:
            params_m = None
        rows.append(PublishedDense(
            model=(r.get("model") or "").strip(), paper_name=(r.get("paper_name") or "").strip(),
            recipe=(r.get("task") or "").strip(), dataset=(r.get("dataset") or "").strip(),
            metric=(r.get("metric") or "").strip(), value=value, schedule=(r.get("schedule") or "").strip(),
            input_size=(r.get("input_size") or "").strip(), source=(r.get("source") or "").strip(),
            framework=(r.get("framework") or "").strip(), backbone_params_m=params_m))
    return tuple(rows)


def dense_lookup(model: str, task: str | None = None, metric: str | None = None) -> list[PublishedDense]:
    """The published dense figures of backbone ``model`` (its exact name: a distilled or swapped variant has
    none of its own), optionally only those going with measured ``task`` (features, segment) and of ``metric``."""
    return [r for r in load_dense() if r.model == model and (task is None or r.task == task)
            and (metric is None or r.metric == metric)]
