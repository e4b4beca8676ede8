"""Checkpoint loading: every accepted layout round-trips; every bad file gets a message naming it."""
from __future__ import annotations

import pytest
import torch

import lsnet
from lsnet import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    model = lsnet.create_model("lsnet_t", num_classes=10, img_size=64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def _write(path, sd, layout):
    if layout == "official":
        torch.save({"model": sd, "epoch": 3}, path)
    elif layout == "bare":
        torch.save(sd, path)
    elif layout == "state_dict":
        torch.save({"state_dict": sd}, path)
    elif layout == "module":
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    elif layout == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


@pytest.mark.parametrize("layout", ["official", "bare", "state_dict", "module", "safetensors"])
def test_round_trip(layout, source, tmp_path):
    path = tmp_path / ("ck.safetensors" if layout == "safetensors" else "ck.pth")
    _write(path, source.state_dict(), layout)
    model = lsnet.create_model("lsnet_t", num_classes=10, img_size=64, pretrained=str(path))
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_save_checkpoint_official_layout(source, tmp_path):
    lsnet.save_checkpoint(source, tmp_path / "m.pth")
    obj = torch.load(tmp_path / "m.pth", weights_only=True)
    assert set(obj) == {"model"} and set(obj["model"]) == set(source.state_dict())
    lsnet.save_checkpoint(source, tmp_path / "m.safetensors")
    load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), tmp_path / "m.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: no such file"):
        load_checkpoint(lsnet.create_model("lsnet_t"), tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix,content", [(".pth", b"not a checkpoint at all"),
                                            (".safetensors", b"\x00\x01garbage")])
def test_corrupt_file(tmp_path, suffix, content):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"broken{suffix}: cannot be read"):
        load_checkpoint(lsnet.create_model("lsnet_t"), path)


def test_truncated_file(source, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"model": source.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pth: cannot be read"):
        load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="list.pth: holds no state dict"):
        load_checkpoint(lsnet.create_model("lsnet_t"), path)


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "cfg": object()}, path)
    with pytest.raises(CheckpointError, match="evil.pth: cannot be read"):
        load_checkpoint(lsnet.create_model("lsnet_t"), path)


def test_other_variant_names_keys(source, tmp_path):
    path = tmp_path / "t.pth"
    torch.save({"model": source.state_dict()}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(lsnet.create_model("lsnet_s", num_classes=10, img_size=64), path)
    msg = str(e.value)
    assert "t.pth" in msg and "missing keys" in msg and "shape mismatches" in msg and "patch_embed" in msg


def test_other_class_count_names_the_head(source, tmp_path):
    path = tmp_path / "t10.pth"
    torch.save({"model": source.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"head\.l\.weight: checkpoint \(10, 384\) vs model \(1000, 384\)"):
        load_checkpoint(lsnet.create_model("lsnet_t", img_size=64), path)


def test_distilled_checkpoint_into_plain_model(tmp_path):
    path = tmp_path / "d.pth"
    torch.save({"model": lsnet.create_model("lsnet_t_distill", num_classes=10, img_size=64).state_dict()}, path)
    with pytest.raises(CheckpointError, match="unexpected keys: head_dist"):
        load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), path)
