"""Accuracy suite: measured (tiny generated ImageFolder + checkpoint), proxy (determinism, labels, a short run),
published; preprocessing; clear errors."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

import lsnet
from suites import accuracy
from suites.core import proxy_task, zoo
from suites.core.schema import MEASURE_COLUMNS, STATUS_COLUMNS
from suites.core.cell import Cell, Context
from suites.core.imagefolder import IMAGENET_MEAN, IMAGENET_STD, DatasetLayoutError, EvalTransform, scan

RES = 64  # small input for speed; the model is built at the same size


def _run(model: str, options: dict, **cell_kw) -> dict:
    """The accuracy suite on one cell with these options, as a sweep runs it: the descriptor's skip first
    (the planner's), then the suite (options validated first, as the CLI does)."""
    cell = Cell(suite="accuracy", model=model, options=accuracy.Options(**options), **cell_kw)
    reason = accuracy.SUITE.skip_reason(cell)
    return {"status": "skipped", "error": reason} if reason else accuracy.run(cell, Context())


def test_the_planner_skips_what_the_descriptor_rules_out():
    from suites.sweep.plan import plan
    tasks = plan(["accuracy"], ["lsnet_t", "lsnet_t_mixer_attn"], ["cpu"], ["float32"], engines_=["eager", "compile"],
                 options={"accuracy": accuracy.Options(dataset="published")})
    reasons = {(t.cells[0].model, t.cells[0].engine): t.skip_reason for t in tasks}
    assert reasons[("lsnet_t", "eager")] is None
    assert "measured with --engine eager" in reasons[("lsnet_t", "compile")]
    assert "no published ImageNet top-1 for 'lsnet_t_mixer_attn'" in reasons[("lsnet_t_mixer_attn", "eager")]


def _folder(root, classes=("ant", "bee", "cat"), per_class=4, corrupt=1):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(60, 120)), int(rng.integers(60, 120))
            arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            arr[..., ci] = 255  # a class-coloured cast
            Image.fromarray(arr).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    for i in range(corrupt):
        (root / classes[0] / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    (root / classes[0] / "notes.txt").write_text("ignored: not an image")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = zoo.create("lsnet_t", num_classes=3, img_size=RES)
    for m in model.modules():  # non-trivial BN statistics, so fusion and eval mode matter
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "lsnet_t_3cls.pth"
    lsnet.save_checkpoint(model, path)
    return path


def _reference_preds(root, ckpt):
    """Predictions without the DataLoader, fusion or the suite: one unfused eval-mode batch."""
    model = zoo.create("lsnet_t", num_classes=3, img_size=RES)
    lsnet.load_checkpoint(model, ckpt)
    samples, _ = scan(root)
    tf = EvalTransform(RES)
    xs, labels = [], []
    for path, label in samples:
        try:
            with Image.open(path) as img:
                xs.append(tf(img))
        except OSError:
            continue
        labels.append(label)
    with torch.no_grad():
        pred = model.eval()(torch.stack(xs)).argmax(1)
    return 100 * (pred == torch.tensor(labels)).float().mean().item(), len(labels)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_measured_imagefolder(tmp_path, checkpoint, fmt):
    root = _folder(tmp_path / "val")
    ckpt = checkpoint
    if fmt == "safetensors":
        m = zoo.create("lsnet_t", num_classes=3, img_size=RES)
        lsnet.load_checkpoint(m, checkpoint)
        ckpt = tmp_path / "w.safetensors"
        lsnet.save_checkpoint(m, ckpt)
    row = _run("lsnet_t", {"dataset": "imagefolder", "data": str(root), "checkpoint": str(ckpt), "num_classes": 3,
                           "workers": 2 if fmt == "pth" else 0}, resolution=RES, batch_size=5)
    assert set(row) - {"extra"} <= set(MEASURE_COLUMNS + STATUS_COLUMNS)
    ref_top1, n = _reference_preds(root, checkpoint)
    assert row["top1"] == pytest.approx(ref_top1)  # fused, batched, worker-loaded == per-image reference
    assert row["top1_source"] == "measured:val"
    ex = row["extra"]
    assert (ex["n_images"], ex["n_unreadable"]) == (n, 1) == (12, 1)
    assert ex["unreadable_examples"][0].endswith("broken0.jpg")
    assert ex["top5"] is None  # fewer than 5 classes
    assert row["params_m"] == pytest.approx(sum(p.numel() for p in zoo.create("lsnet_t", 3, RES).parameters()) / 1e6,
                                            abs=1e-4)


def test_an_engine_failing_parity_is_an_error_row_that_keeps_its_top1(tmp_path, checkpoint):
    root = _folder(tmp_path / "val")
    row = _run("lsnet_t", {"dataset": "imagefolder", "data": str(root), "checkpoint": str(checkpoint),
                           "num_classes": 3, "workers": 0}, resolution=RES, batch_size=5, engine="onnxruntime",
               parity_tol=1e-15)
    assert row["status"] == "error" and "above the float32 tolerance 1e-15" in row["error"]
    ref_top1, _ = _reference_preds(root, checkpoint)
    assert row["top1"] == pytest.approx(ref_top1) and f"top-1 {ref_top1:.2f}% measured through it" in row["error"]


def test_measured_errors_are_clear(tmp_path, checkpoint):
    def run(**opts):
        o = {"dataset": "imagefolder", "checkpoint": str(checkpoint), "workers": 0} | opts
        return _run("lsnet_t", o, resolution=RES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty"):
        run(data=str(tmp_path / "empty"))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(DatasetLayoutError, match="1 images but no class folders"):
        run(data=str(flat))
    with pytest.raises(DatasetLayoutError, match="no such directory"):
        run(data=str(tmp_path / "missing"))
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no image files"):
        run(data=str(tmp_path / "noimg"))
    for c in "abc":  # empty class folders are allowed; the only image is unreadable
        (tmp_path / "junk" / c).mkdir(parents=True)
    (tmp_path / "junk" / "a" / "x.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="none of the 1 images could be read"):
        run(data=str(tmp_path / "junk"))
    root = _folder(tmp_path / "val", per_class=1, corrupt=0)
    with pytest.raises(ValueError, match="3 class folders but the model has 1000 classes"):
        run(data=str(root), num_classes=1000)
    with pytest.raises(lsnet.CheckpointError, match="shape"):  # 3 folders, checkpoint of 3 classes, model of 4
        (root / "dog").mkdir()
        run(data=str(root), num_classes=4)
    with pytest.raises(ValueError, match="needs --checkpoint PATH"):
        run(data=str(root), checkpoint=None)
    with pytest.raises(ValueError, match="needs --data DIR"):
        _run("lsnet_t", {})


def test_eval_transform_is_the_official_preprocessing():
    tf = EvalTransform(224)
    assert int(tf.img_size / tf.crop_ratio) == 256
    # a constant image stays constant through bicubic resize and crop: exactly the normalised value
    x = tf(Image.new("RGB", (500, 375), (10, 128, 250)))
    want = torch.tensor([(v / 255 - m) / s for v, m, s in zip((10, 128, 250), IMAGENET_MEAN, IMAGENET_STD)])
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, want.view(3, 1, 1).expand(3, 224, 224))
    # shorter side -> 256 then a centred 224 crop: a centred 256-px-wide (after resize) bar fills the crop width,
    # a landscape image keeps the central part
    img = Image.new("RGB", (512, 256), (0, 0, 0))
    img.paste((255, 255, 255), (128, 0, 384, 256))  # central half of the width
    y = tf(img)[0]
    assert y[:, 20:204].min() > 2.0 and y.shape == (224, 224)
    img = Image.new("RGB", (256, 512), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 256, 144 + 50))  # portrait: the crop starts at row (512 - 224) / 2 = 144
    y = tf(img)[0]
    assert y[:45].min() > 2.0 and y[55:].max() < -2.0
    # grayscale and RGBA inputs are converted
    assert tf(Image.new("L", (300, 300), 100)).shape == tf(Image.new("RGBA", (300, 300))).shape == (3, 224, 224)


def test_published_row():
    row = _run("lsnet_t_distill", {"dataset": "published"})
    assert (row["top1"], row["top1_source"]) == (76.1, "published:imagenet-1k")
    assert row["extra"]["tag"] == "in1k_distill" and "in1k_distill" in row["extra"]["source"]
    assert row["params_m"] == pytest.approx(11.7956, abs=1e-3)
    skipped = _run("lsnet_t_mixer_attn", {"dataset": "published"})
    assert _run("lsnet_t", {"dataset": "published"}, engine="compile")["status"] == "skipped"
    assert skipped["status"] == "skipped" and "no published ImageNet top-1" in skipped["error"]


SMALL = proxy_task.ProxyConfig(seed=3, n_train=96, n_test=48, steps=2, batch_size=16)


def test_proxy_is_deterministic_and_split():
    a, b = proxy_task.make_data(SMALL), proxy_task.make_data(SMALL)
    for t in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, t), getattr(b, t)), t  # same seed: same data and split
    more = proxy_task.make_data(dataclasses.replace(SMALL, n_train=600))  # spans two generator chunks
    assert torch.equal(more.x_test, a.x_test) and torch.equal(more.x_train[:96], a.x_train)
    assert a.x_train.shape == (96, 3, 64, 64) and a.x_test.shape == (48, 3, 64, 64) and a.x_train.dtype == torch.uint8
    c = proxy_task.make_data(proxy_task.ProxyConfig(seed=4, n_train=96, n_test=48))
    assert not torch.equal(a.x_train, c.x_train)
    # test images are not copies of training images
    assert not (a.x_test.flatten(1)[:, None] == a.x_train.flatten(1)[None]).all(-1).any()
    assert set(a.y_train.tolist()) == set(range(10))


def test_proxy_label_is_the_direction_between_the_discs():
    d = proxy_task.make_data(proxy_task.ProxyConfig(seed=0, n_train=200, n_test=0))
    for img, label in zip(d.x_train, d.y_train):
        white = (img == 255).all(0).nonzero().float().mean(0)
        black = (img == 0).all(0).nonzero().float().mean(0)
        dy, dx = (black - white).tolist()
        ang = math.atan2(-dy, dx) % (2 * math.pi)
        assert int(ang // (2 * math.pi / 10)) == label
    # both discs in every image, so colour histograms do not give the class away
    assert ((d.x_train == 255).all(1).flatten(1).sum(1) > 50).all()


def test_proxy_short_run_records_budget_and_seed():
    opts = {"proxy_seed": 3, "proxy_steps": 2, "proxy_n_train": 96, "proxy_n_test": 48, "proxy_batch_size": 16}
    assert proxy_task.ProxyConfig.from_options(opts | {"proxy_steps": "2"}) == SMALL
    assert proxy_task.ProxyConfig().label() == "proxy:v1-seed0-150steps"
    row = _run("lsnet_t", {"dataset": "proxy"} | opts, threads=1)
    assert row["top1_source"].startswith("proxy:v1-seed3-2steps-")  # non-default sizes are hashed into the label
    assert 0 <= row["top1"] <= 100 and row["extra"]["top5"] >= row["top1"]
    assert row["extra"]["seed"] == 3 and row["extra"]["budget"]["steps"] == 2
    assert row["extra"]["img_size"] == 64 and row["extra"]["n_images"] == 48
    assert math.isfinite(row["extra"]["final_loss"])


def test_a_checkpoint_dir_gives_each_model_its_file_in_its_own_format(tmp_path, checkpoint):
    """--checkpoint-dir: LSNet's official layout for lsnet_t, timm's key names for starnet_s1, and a model
    without a file is a skipped row naming the files looked for."""
    import json
    from tests.conftest import DATA, rule_state_from_manifest
    root, ckpts = _folder(tmp_path / "val"), tmp_path / "ckpts"
    for i in range(997):                    # ImageNet's 1000 classes, as released checkpoints have them
        (root / f"z{i:03d}").mkdir()
    ckpts.mkdir()
    lsnet_model = zoo.create("lsnet_t", num_classes=1000, img_size=RES)
    lsnet.save_checkpoint(lsnet_model, ckpts / "lsnet_t.pth")
    timm_sd = rule_state_from_manifest(json.loads((DATA / "timm" / "state_dict_manifest.json").read_text())["starnet_s1"])
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in timm_sd.items()}, ckpts / "starnet_s1.bin")
    opts = {"dataset": "imagefolder", "data": str(root), "checkpoint_dir": str(ckpts), "num_classes": 1000,
            "workers": 0}
    for model in ("lsnet_t", "starnet_s1"):
        row = _run(model, opts, resolution=RES, batch_size=6)
        assert row.get("status", "ok") == "ok" and row["top1"] is not None, row
        assert row["extra"]["checkpoint"].startswith(str(ckpts.resolve())), row["extra"]["checkpoint"]
    skipped = _run("repvit_m0_9", opts, resolution=RES, batch_size=6)
    assert skipped["status"] == "skipped" and "no checkpoint for repvit_m0_9 in" in skipped["error"]
    assert "repvit_m0_9.safetensors" in skipped["error"]
    with pytest.raises(ValueError, match="not both"):
        accuracy.Options(**opts, checkpoint=str(checkpoint)).validate()
