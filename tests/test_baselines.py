"""Baseline families (RepViT, EfficientViT): registry, published counts, training, exact fusion."""
from __future__ import annotations


import pytest
import torch
from torch import nn

import baselines
import lsnet
from baselines import efficientformerv2, efficientvit, fasternet, fastvit, mobilenetv4, repvit, shvit, starnet
from suites.core import zoo
from suites.core import published
from suites.core.counting import count_params, fvcore_macs

# The published params_m (unfused; RepViT with its distillation head) and gmacs_224_fvcore (fvcore on
# timm's implementation at 224) of every baseline in the project's published table.
PUBLISHED = {p.model: (p.params_m, p.gmacs) for p in published.load()
             if p.model in baselines.MODELS and p.params_m and p.gmacs}
FAMILY_MODULES = (repvit, efficientvit, starnet, shvit, fasternet, fastvit, efficientformerv2, mobilenetv4)
FAMILIES = [n for mod in FAMILY_MODULES for n in mod.CONFIGS]
SMALL = 32


def test_the_published_table_covers_the_baselines():
    assert {"repvit_m0_9", "efficientvit_m0", "starnet_s1", "shvit_s1", "fasternet_t0", "fastvit_t8"} <= set(PUBLISHED)


def test_registered_in_zoo():
    for name in [*PUBLISHED, *FAMILIES]:
        assert name in baselines.MODELS and name in zoo.names("baselines")
    for mod in FAMILY_MODULES:
        assert set(zoo.names(mod.FAMILY)) == set(mod.CONFIGS)
        assert mod.__doc__ and "arXiv" in mod.__doc__  # each family cites its paper
    assert isinstance(zoo.create("repvit_m1_1"), repvit.RepViT)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_params_and_macs_match_published(name):
    params_m, gmacs = PUBLISHED[name]
    model = zoo.create(name).eval()
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert fvcore_macs(model, 224) / 1e9 == pytest.approx(gmacs, rel=0.02)


@pytest.mark.parametrize("name,size", [(n, SMALL) for n in FAMILIES] + [("efficientvit_m0", 128)])
def test_train_step_then_fused_equals_unfused(name, size, fuse_check):
    # One build per model: a training forward/backward (with stochastic depth), then, in float64 with
    # every parameter and BN statistic randomised so each fold is really exercised, fused == unfused.
    # efficientvit_m0 at 128 runs zero-padded 7x7 windows in its first stage (8x8 map).
    torch.manual_seed(0)
    model = zoo.create(name, num_classes=7, img_size=size, drop_path_rate=0.1).train()
    out = model(torch.randn(2, 3, size, size))
    if isinstance(out, tuple):  # RepViT's distillation pair in training
        assert len(out) == 2
        out = out[0] + out[1]
    assert out.shape == (2, 7)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing

    fused, ref, err = fuse_check(model, size)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in fused.modules())
    assert count_params(fused) < count_params(model)
    assert torch.isfinite(ref).all() and ref.abs().max() > 0
    assert err < 1e-10


def test_repvit_reparameterises_to_single_convs():
    fused = lsnet.fuse(repvit.build("repvit_m0_9").eval())
    block = fused.stages[0].blocks[0]
    assert isinstance(block.token_mixer, nn.Conv2d) and block.token_mixer.kernel_size == (3, 3)
    assert isinstance(fused.head, nn.Linear)  # head and head_dist merged
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)


def test_repvit_distillation_head():
    model = repvit.build("repvit_m0_9", num_classes=5).eval()
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.no_grad():
        f = model.forward_features(x)
        torch.testing.assert_close(model(x), (model.head.head(f) + model.head.head_dist(f)) / 2)
    plain = repvit.build("repvit_m0_9", num_classes=5, distillation=False)
    assert not hasattr(plain.head, "head_dist")
    assert count_params(model) - count_params(plain) == 384 * 5 + 5 + 2 * 384


def test_efficientvit_checks_input_size():
    model = efficientvit.build("efficientvit_m0", img_size=SMALL).eval()
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(1, 3, 96, 96))


def test_efficientvit_attention_bias_follows_window():
    # 224: stage resolutions 14, 7, 4 -> window tables 7x7 (49 offsets), 7x7, 4x4 (16 offsets)
    model = efficientvit.build("efficientvit_m0")
    tables = [m.attention_biases.shape[1] for m in model.modules()
              if isinstance(m, efficientvit.CascadedGroupAttention)]
    assert tables == [49, 49, 49, 16, 16, 16]


def test_fastvit_reparameterises_to_single_convs():
    fused = lsnet.fuse(fastvit.build("fastvit_t8").eval())
    block = fused.stages[0].blocks[0]
    assert isinstance(block.token_mixer, nn.Conv2d) and block.token_mixer.groups == 48  # RepMixer -> one dw 3x3
    assert isinstance(fused.stages[1].downsample.proj[0], nn.Conv2d)  # 7x7 + 3x3 -> one 7x7
    assert all(isinstance(m[0], nn.Conv2d) and isinstance(m[1], nn.GELU) for m in fused.stem)  # conv + GELU each
    assert not any(isinstance(m, (fastvit.MobileOneBlock, fastvit.RepMixer)) for m in fused.modules())
