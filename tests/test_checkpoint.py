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


def test_directory_and_empty_file_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory; give the checkpoint file inside it"):
        load_checkpoint(lsnet.create_model("lsnet_t"), tmp_path)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pth: empty file \(0 bytes\)"):
        load_checkpoint(lsnet.create_model("lsnet_t"), tmp_path / "empty.pth")


def test_crc_mismatch_in_a_zip_member_is_detected(source, tmp_path):
    path = tmp_path / "flip.pth"
    torch.save({"model": source.state_dict()}, path)
    import zipfile
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)      # the largest tensor's storage
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 64
    data[start] ^= 0xFF                                          # one flipped byte inside the member
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint \\(CRC mismatch in member {info.filename}\\)"):
        load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), path)


def test_non_finite_and_non_floating_values_are_refused(source, tmp_path):
    sd = dict(source.state_dict())
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    nan = {**sd, key: sd[key].clone().fill_(float("nan"))}
    torch.save({"model": nan}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=f"non-finite values \\(NaN or Inf\\) in 1 tensor\\(s\\): {key}"):
        load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), tmp_path / "nan.pth")
    ints = {**sd, key: sd[key].to(torch.int64)}
    torch.save({"model": ints}, tmp_path / "int.pth")
    with pytest.raises(CheckpointError, match=f"non-floating tensors for floating parameters: {key} \\(torch.int64\\)"):
        load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), tmp_path / "int.pth")


@pytest.mark.parametrize("name", ["w.PTH", "w.SafeTensors"])
def test_suffix_case(source, tmp_path, name):
    path = tmp_path / name
    if name.lower().endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save({"model": source.state_dict()}, path)
    load_checkpoint(lsnet.create_model("lsnet_t", num_classes=10, img_size=64), path)


def test_messages_never_suggest_weights_only_false(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "cfg": object()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(lsnet.create_model("lsnet_t"), path)
    assert "weights_only" not in str(info.value) and "expected a torch .pth" in str(info.value)
