"""LSNet family: state-dict layout, parameter counts, reference logits, training behaviour."""
from __future__ import annotations

import json

import pytest
import torch

import lsnet
from lsnet.model import set_ska_backend

TRAINABLE = {"lsnet_t": 11_409_832, "lsnet_s": 16_146_304, "lsnet_b": 23_313_608,
             "lsnet_t_distill": 11_795_600, "lsnet_s_distill": 16_596_200, "lsnet_b_distill": 23_827_632}
FOLDED = {"lsnet_t": 11_370_488, "lsnet_s": 16_098_232, "lsnet_b": 23_249_320}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_list_models():
    assert lsnet.list_models() == list(TRAINABLE)


@pytest.mark.parametrize("name", list(TRAINABLE))
def test_state_dict_matches_manifest_and_counts(name, data_dir):
    manifest = json.loads((data_dir / "state_dict_manifest.json").read_text())[name]
    model = lsnet.create_model(name)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == list(manifest.items())
    assert n_params(model) == TRAINABLE[name]


@pytest.mark.parametrize("name", list(FOLDED))
def test_folded_parameter_counts(name):
    assert n_params(lsnet.fuse(lsnet.create_model(name).eval())) == FOLDED[name]


@pytest.mark.parametrize("fused,backend", [(False, "torch"), (True, "torch"), (True, "reference")])
def test_reference_logits_float64(fused, backend, deterministic, data_dir, rel_err):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, 224, 224, generator=g, dtype=torch.float64)
    expected = torch.load(data_dir / "reference_logits_lsnet_t.pt")["lsnet_t"]
    model = deterministic(lsnet.create_model("lsnet_t"))
    if fused:
        model = lsnet.fuse(model)
        assert model.head.__class__ is torch.nn.Linear
    set_ska_backend(model, backend)
    with torch.inference_mode():
        assert rel_err(model(x), expected) < 1e-12


def test_channel_uses_weight_c_mod_cw():
    x = torch.zeros(1, 16, 3, 3, dtype=torch.float64)
    x[0, 4, 1, 1] = 1.0  # channel 4 with Cw = 4 must use weight channel 0, not 4 // 4 = 1
    w = torch.zeros(1, 4, 9, 3, 3, dtype=torch.float64)
    w[0, 0, 4] = 2.0
    w[0, 1, 4] = 3.0
    y = lsnet.ops.ska(x, w)
    assert y[0, 4, 1, 1].item() == 2.0


def test_distilled_returns_pair_in_training_and_mean_in_eval():
    model = lsnet.create_model("lsnet_t_distill", num_classes=10, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (2, 10)
    model.eval()
    with torch.no_grad():
        a, b = model.head(model.forward_features(x)), model.head_dist(model.forward_features(x))
        torch.testing.assert_close(model(x), (a + b) / 2)


def test_training_backward_and_stochastic_depth(deterministic):
    torch.manual_seed(0)
    model = lsnet.create_model("lsnet_t", num_classes=10, img_size=64, drop_path_rate=0.5)
    model = deterministic(model).float().train()  # non-zero residual branches (pw2 BN starts at 0)
    x = torch.randn(4, 3, 64, 64)
    model(x).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "head" in n)
    drops = [m.drop for m in model.modules() if isinstance(m, lsnet.layers.Residual)]
    assert drops[0] == 0.0 and max(drops) == pytest.approx(0.5)
    # with drop path the training output is random; without, it is not
    for m in model.modules():  # freeze BN statistics so only drop path differs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        assert (model(x) - model(x)).abs().max() > 1e-3
        plain = lsnet.create_model("lsnet_t", num_classes=10, img_size=64).eval()
        torch.testing.assert_close(plain(x), plain(x))


@pytest.mark.parametrize("size", [96, 160, 256])
def test_other_input_sizes(size):
    model = lsnet.create_model("lsnet_t", num_classes=5, img_size=size).eval()
    n = size
    for _ in range(6):  # stride-8 stem, then three downsamples
        n = (n - 1) // 2 + 1
    assert model.blocks4[3].mixer.m.attention_bias_idxs.shape == (n * n, n * n)
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 5)


def test_wrong_input_size_names_the_fix():
    model = lsnet.create_model("lsnet_t", img_size=224).eval()
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(1, 3, 128, 128))


def test_unknown_model():
    with pytest.raises(ValueError, match="lsnet_t"):
        lsnet.create_model("lsnet_xl")


@pytest.mark.parametrize("name", ["lsnet_s", "lsnet_b_distill"])
def test_fused_equals_unfused_float64(name, fuse_check):
    fused, _, err = fuse_check(lsnet.create_model(name, img_size=64), 64)
    assert err < 1e-12
    assert next(fused.parameters()).dtype == torch.float64
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


@pytest.mark.parametrize("resolution", [1, 2, 4, 7, 14])
def test_attention_bias_index_table_equals_the_official_loops(resolution):
    import itertools

    from lsnet.model import attention_bias_idxs
    points = list(itertools.product(range(resolution), range(resolution)))
    offsets, idxs = {}, []
    for p1 in points:                                  # the official construction
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    table, m = attention_bias_idxs(resolution)
    assert m == len(offsets) and table.dtype == torch.long
    assert torch.equal(table, torch.tensor(idxs).view(len(points), len(points)))
