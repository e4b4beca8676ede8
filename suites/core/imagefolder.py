"""ImageFolder reading and the official LSNet evaluation preprocessing, with Pillow and torch only.

Layout: ``ROOT/<class name>/<image>``; sorted class-folder names give the class indices (as ImageNet
val is usually laid out). Preprocessing (the official evaluation): resize the shorter side to
``int(img_size / crop_ratio)`` with bicubic interpolation (256 for 224 at the official ratio 224/256),
center crop ``img_size``, scale to [0, 1], normalise with the ImageNet mean and std.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".jfif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFICIAL_CROP_RATIO = 224 / 256


class DatasetLayoutError(ValueError):
    """A data folder that is missing, empty, or not laid out as one folder per class."""


def scan(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, classes)``: (path, class index) for every image file, and the sorted class names.

    Raises DatasetLayoutError naming the problem when the folder cannot be an ImageFolder.
    """
    root = Path(root)
    layout = "expected ImageFolder layout ROOT/<class name>/<image>, e.g. val/n01440764/ILSVRC2012_val_00000293.JPEG"
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root}: no such directory; {layout}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        loose = [e.name for e in os.scandir(root) if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)]
        what = f"holds {len(loose)} images but no class folders" if loose else "is empty (no class folders)"
        raise DatasetLayoutError(f"data folder {root} {what}; {layout}")
    samples = []
    for idx, cls in enumerate(classes):
        for dirpath, dirnames, files in os.walk(root / cls, followlinks=True):
            dirnames.sort()
            samples += [(os.path.join(dirpath, f), idx) for f in sorted(files)
                        if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith(".")]
    if not samples:
        raise DatasetLayoutError(f"data folder {root} has {len(classes)} class folders but no image files "
                                 f"({', '.join(IMG_EXTENSIONS)}); {layout}")
    return samples, classes


@dataclass(frozen=True)
class EvalTransform:
    """Official evaluation preprocessing: PIL image -> normalised float tensor (3, img_size, img_size)."""
    img_size: int = 224
    crop_ratio: float = OFFICIAL_CROP_RATIO
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB")
        size = int(self.img_size / self.crop_ratio)
        w, h = img.size
        # torchvision Resize(int) semantics: shorter side -> size, longer side scaled and truncated
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BICUBIC)
        c = self.img_size
        top, left = int(round((nh - c) / 2.0)), int(round((nw - c) / 2.0))
        img = img.crop((left, top, left + c, top + c))
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std


class ImageFolderDataset(Dataset):
    """Items are ``(image, label, ok, index)``; an unreadable image gives a zero tensor and ``ok=False``."""

    def __init__(self, root: str | os.PathLike, transform: EvalTransform):
        self.root = Path(root)
        self.samples, self.classes = scan(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool, int]:
        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                return self.transform(img), label, True, i
        except Exception:  # truncated, corrupt, or not an image: counted by the caller, not fatal
            s = self.transform.img_size
            return torch.zeros(3, s, s), label, False, i
