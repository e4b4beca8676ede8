"""Token-mixer swaps on LSNet-T: each differs from lsnet_t only in the stage 1-3 odd-block mixers."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import lsnet
from baselines import mixers
from suites.core import zoo

NAMES = list(mixers.MODELS)
SMALL = 32
# odd blocks of blocks1..3 hold the swapped mixer (blocks2/3 start with two downsample layers)
MIXER_KEY = re.compile(r"^blocks[123]\.(\d+)\.mixer\.")


def _swapped(key: str) -> bool:
    m = MIXER_KEY.match(key)
    return bool(m) and (int(m.group(1)) - 2) % 2 == 1


def test_registered():
    assert {"lsnet_t_mixer_attn", "lsnet_t_mixer_dwconv3", "lsnet_t_mixer_dwconv7",
            "lsnet_t_mixer_ls_k53", "lsnet_t_mixer_ls_k93", "lsnet_t_mixer_ls_k55"} <= set(NAMES)
    assert set(zoo.names("lsnet_mixer")) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_differs_only_in_mixers(name):
    base = lsnet.create_model("lsnet_t").state_dict()
    var = zoo.create(name).state_dict()
    same = lambda sd: {k: tuple(v.shape) for k, v in sd.items() if not _swapped(k)}  # noqa: E731
    assert same(var) == same(base)
    swapped = {k: tuple(v.shape) for k, v in var.items() if _swapped(k)}
    base_swapped = {k: tuple(v.shape) for k, v in base.items() if _swapped(k)}
    assert swapped and swapped != base_swapped
    prefixes = {k.split(".mixer.")[0] for k in swapped}
    assert prefixes == {k.split(".mixer.")[0] for k in base_swapped}  # same blocks, 10 in LSNet-T
    assert len(prefixes) == 1 + 4
    kind = name.removeprefix("lsnet_t_mixer_")
    suffixes = {k.split(".mixer.")[1] for k in swapped}
    if kind == "attn":
        assert "m.attention_biases" in suffixes and "m.qkv.c.weight" in suffixes
    elif kind.startswith("dwconv"):
        k = int(kind.removeprefix("dwconv"))
        assert suffixes == {"m.c.weight", "m.bn.weight", "m.bn.bias", "m.bn.running_mean", "m.bn.running_var",
                            "m.bn.num_batches_tracked"}
        assert all(s[1:] == (1, k, k) for key, s in swapped.items() if key.endswith("m.c.weight"))
    else:  # LS conv with other kernels: same keys, kernel-dependent shapes
        kl, ks = int(kind[-2]), int(kind[-1])
        assert set(swapped) == set(base_swapped)
        for key, s in swapped.items():
            if key.endswith("lkp.cv2.c.weight"):
                assert s[2:] == (kl, kl)
            elif key.endswith("lkp.cv4.weight"):
                assert s[0] == ks * ks * base[key].shape[0] // 9


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_fuse(name, fuse_check):
    torch.manual_seed(0)
    model = zoo.create(name, num_classes=5, img_size=SMALL).train()
    model(torch.randn(2, 3, SMALL, SMALL)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    fused, ref, err = fuse_check(model, SMALL)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert err < 1e-10


def test_attn_variant_uses_three_heads_at_stage_resolution():
    sd = zoo.create("lsnet_t_mixer_attn").state_dict()  # 224: blocks1..4 at 28 (empty in T), 14, 7, 4
    assert sd["blocks2.3.mixer.m.attention_biases"].shape == (3, 14 * 14)
    assert sd["blocks3.3.mixer.m.attention_biases"].shape == (3, 7 * 7)
    assert sd["blocks4.3.mixer.m.attention_biases"].shape == (4, 4 * 4)  # stage 4 untouched


def test_default_kernels_reproduce_lsnet_t(deterministic):
    # the mixer plumbing with LS conv (7, 3) must be lsnet_t itself, weight for weight
    base = deterministic(lsnet.create_model("lsnet_t", num_classes=5, img_size=SMALL))
    same = lsnet.create_model("lsnet_t", num_classes=5, img_size=SMALL,
                              mixer=mixers._last_stage_or(mixers.ls_mixer(7, 3))).double().eval()
    same.load_state_dict(base.state_dict())
    x = torch.randn(2, 3, SMALL, SMALL, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(same(x), base(x), rtol=0, atol=0)
