"""Our baselines are the released models: every variant of timm's manifest loads a timm-format state
dict unchanged (key names and shapes), and one variant per family computes timm's reference logits
in float64 (relative error <= 1e-9), before and after ``fuse()``.

The data (``tests/data/timm``, copied from ``shared/reference/timm``) were made with timm 1.0.31
without downloaded weights; the parameters follow the rule in ``conftest.rule_tensor``.
"""
from __future__ import annotations

import json

import pytest
import torch

import baselines
import lsnet
from lsnet.checkpoint import CheckpointError
from tests.conftest import DATA, rule_state_from_manifest

TIMM = DATA / "timm"
MANIFEST: dict[str, dict[str, list[int]]] = json.loads((TIMM / "state_dict_manifest.json").read_text())
COUNTS: dict[str, dict] = json.loads((TIMM / "counts.json").read_text())
LOGITS_OF = ("repvit_m0_9", "efficientvit_m0", "starnet_s1", "shvit_s1", "fasternet_t0", "fastvit_t8",
             "mobilenetv4_conv_small", "efficientformerv2_s0")
TOLERANCE = 1e-9


def reference_input() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)


def _loaded(name: str) -> torch.nn.Module:
    """Variant ``name`` in float64 eval mode with the rule's parameters, loaded through the timm loader."""
    model = baselines.create_model(name).double().eval()
    sd = rule_state_from_manifest(MANIFEST[name])
    baselines.checkpoint.load_state_dict(model, sd, f"timm manifest of {name}")
    return model


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def test_the_data_cover_thirty_variants():
    assert len(MANIFEST) == 30 and set(LOGITS_OF) <= set(MANIFEST) and set(COUNTS) >= set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_variant_loads_timm_keys_and_shapes_and_counts_timms_parameters(name):
    model = _loaded(name)
    params = sum(p.numel() for p in model.parameters())
    assert params == COUNTS[name]["params"], f"{name}: {params} parameters, timm has {COUNTS[name]['params']}"


@pytest.mark.parametrize("name", LOGITS_OF)
def test_reference_logits_before_and_after_fuse(name):
    ref = torch.load(TIMM / "reference_logits.pt", weights_only=True)[name]
    model = _loaded(name)
    x = reference_input()
    with torch.inference_mode():
        out = model(x)
        assert out.shape == ref.shape and _rel(out, ref) <= TOLERANCE, f"{name} unfused: {_rel(out, ref):.3g}"
        fused = lsnet.fuse(model)(x)
        assert _rel(fused, ref) <= TOLERANCE, f"{name} fused: {_rel(fused, ref):.3g}"


def test_a_timm_checkpoint_file_loads_in_every_layout(tmp_path):
    """The released files: bare, under ``model``/``state_dict``, ``module.``-prefixed, and safetensors."""
    from safetensors.torch import save_file
    name = "starnet_s1"
    sd = {k: v.float() if v.is_floating_point() else v for k, v in rule_state_from_manifest(MANIFEST[name]).items()}
    layouts = {"pytorch_model.bin": sd, "wrapped.pth": {"model": sd}, "state.pth": {"state_dict": sd},
               "ddp.pth": {f"module.{k}": v for k, v in sd.items()}}
    for file, obj in layouts.items():
        torch.save(obj, tmp_path / file)
    save_file(sd, str(tmp_path / "model.safetensors"))
    for file in [*layouts, "model.safetensors"]:
        model = baselines.create_model(name, pretrained=str(tmp_path / file))
        key = next(iter(model.state_dict()))
        assert torch.equal(model.state_dict()[key], baselines.checkpoint.from_timm(model, sd)[key]), file


def test_a_checkpoint_of_another_variant_is_refused_naming_keys_and_shapes(tmp_path):
    sd = {k: v.float() if v.is_floating_point() else v for k, v in rule_state_from_manifest(MANIFEST["starnet_s2"]).items()}
    torch.save(sd, tmp_path / "s2.bin")
    with pytest.raises(CheckpointError, match=r"does not fit .*shape mismatches"):
        baselines.create_model("starnet_s1", pretrained=str(tmp_path / "s2.bin"))
    bad = dict(sd)
    bad[next(k for k, v in sd.items() if v.is_floating_point())] = torch.full((1,), float("nan"))
    torch.save(bad, tmp_path / "nan.bin")
    with pytest.raises(CheckpointError, match="non-finite"):
        baselines.create_model("starnet_s2", pretrained=str(tmp_path / "nan.bin"))
