"""Dense prediction: non-square img_size for every family, backbones (strides, channels), Semantic FPN, fusion."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

import baselines
import lsnet
from baselines import dense, efficientformerv2, efficientvit
from lsnet.model import Attention

H, W = 64, 96  # non-square, small: every family's stride and attention constraints allow it

# one model per family: (strides, channels) of its backbone
LAYOUT = {
    "lsnet_t": ((8, 16, 32, 64), (64, 128, 256, 384)),
    "lsnet_t_mixer_attn": ((8, 16, 32, 64), (64, 128, 256, 384)),
    "repvit_m0_9": ((4, 8, 16, 32), (48, 96, 192, 384)),
    "efficientformerv2_s0": ((4, 8, 16, 32), (32, 48, 96, 176)),
    "fastvit_t8": ((4, 8, 16, 32), (48, 96, 192, 384)),
    "fasternet_t0": ((4, 8, 16, 32), (40, 80, 160, 320)),
    "starnet_s1": ((4, 8, 16, 32), (24, 48, 96, 192)),
    "mobilenetv4_conv_small": ((4, 8, 16, 32), (32, 64, 96, 960)),
    "mobilenetv4_hybrid_medium": ((4, 8, 16, 32), (48, 80, 160, 960)),
    "shvit_s1": ((16, 32, 64), (128, 224, 320)),
    "efficientvit_m0": ((16, 32, 64), (64, 128, 192)),
}
FAMILY_STRIDES = {"lsnet": (8, 16, 32, 64), "lsnet_mixer": (8, 16, 32, 64), "shvit": (16, 32, 64),
                  "efficientvit": (16, 32, 64)}


def create(name: str, **kw) -> nn.Module:
    if name in lsnet.list_models():
        return lsnet.create_model(name, **kw)
    return baselines.create_model(name, **kw)


def zoo_names() -> list[str]:
    return [*lsnet.list_models(), *baselines.MODELS]


def family(name: str) -> str:
    return "lsnet" if name in lsnet.list_models() else baselines.MODELS[name][0]


@pytest.mark.parametrize("name", list(LAYOUT))
def test_backbone_feature_shapes_non_square(name):
    strides, channels = LAYOUT[name]
    bb = dense.for_task(create(name, img_size=(H, W)).eval(), "features")
    assert isinstance(bb, dense.Backbone) and bb.strides == strides and bb.channels == channels
    tails = ("head", "head_dist", "classifier", "conv_head", "norm_head", "final_conv", "norm")
    assert not any(k.split(".")[0] in tails for k in bb.state_dict())  # no classifier head
    with torch.no_grad():
        feats = bb(torch.randn(2, 3, H, W))
    ceil = lambda n, s: -(-n // s)  # noqa: E731 (3x3 stride-2 convs padded 1: ceil at every halving)
    assert [tuple(f.shape) for f in feats] == [(2, c, ceil(H, s), ceil(W, s)) for s, c in zip(strides, channels)]


def test_every_zoo_model_has_a_layout_and_accepts_hw():
    for name in zoo_names():
        bb = dense.Backbone(create(name, img_size=(H, W)))
        assert bb.strides == FAMILY_STRIDES.get(family(name), (4, 8, 16, 32)), name
        assert len(bb.channels) == len(bb.strides) and all(c > 0 for c in bb.channels), name


@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_t_mixer_attn", "efficientformerv2_s0", "efficientvit_m0"])
def test_non_square_model_runs_and_rejects_a_wrong_size(name):
    model = create(name, num_classes=5, img_size=(H, W)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, H, W)).shape == (1, 5)
        with pytest.raises(ValueError, match=r"img_size.*\(H, W\)|\(H, W\).*img_size") as err:
            model(torch.randn(1, 3, W, H))  # transposed: same pixels, wrong grid
        assert "x" in str(err.value) and any(c.isdigit() for c in str(err.value))
        with pytest.raises(ValueError, match=f"built for img_size {H}x{W}.*input \\(1, 3, {W}, {H}\\)"):
            dense.Backbone(model)(torch.randn(1, 3, W, H))


def test_lsnet_names_the_sizes():
    model = lsnet.create_model("lsnet_t", img_size=(H, W)).eval()
    with pytest.raises(ValueError, match=rf"img_size {H}x{W} \(stage-4 attention grid 1x2\).*\(1, 3, 128, 128\)"):
        model(torch.randn(1, 3, 128, 128))
    with pytest.raises(ValueError, match="img_size must be an int or an \\(H, W\\) pair"):
        lsnet.create_model("lsnet_t", img_size=(64, 96, 3))
    with pytest.raises(ValueError, match="at least 32 on each side.*64x16"):
        lsnet.create_model("lsnet_t", img_size=(64, 16))


def _levit_loop(h: int, w: int) -> tuple[torch.Tensor, int]:
    """The official LeViT/LSNet construction, on an h x w grid."""
    points = list(itertools.product(range(h), range(w)))
    offsets, idxs = {}, []
    for p1 in points:
        for p2 in points:
            idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
    return torch.tensor(idxs).view(len(points), len(points)), len(offsets)


def test_lsnet_bias_tables_built_for_the_hw_grid():
    # 128x192: stem /8 -> 16x24, then 8x12, 4x6, 2x3 (stage 4)
    model = lsnet.create_model("lsnet_t", img_size=(128, 192))
    attn = [m for m in model.blocks4.modules() if isinstance(m, Attention)]
    assert len(attn) == 5
    table, m = _levit_loop(2, 3)
    for a in attn:
        assert a.attention_biases.shape == (4, m) == (4, 6)
        assert torch.equal(a.attention_bias_idxs, table)
    sd = model.state_dict()
    assert sd["blocks4.3.mixer.m.attention_biases"].shape == (4, 6)
    assert sd["blocks4.3.mixer.m.attention_bias_idxs"].shape == (6, 6)
    # the attn mixer swap: stage-3 tables for its 4x6 grid
    swap = baselines.create_model("lsnet_t_mixer_attn", img_size=(128, 192))
    a3 = swap.blocks3[3].mixer.m
    assert a3.attention_biases.shape == (3, 24) and torch.equal(a3.attention_bias_idxs, _levit_loop(4, 6)[0])
    # square img_size: the official tables (224 -> 4x4, 16 offsets)
    square = lsnet.create_model("lsnet_t").blocks4[3].mixer.m
    assert square.attention_biases.shape == (4, 16) and square.resolution == 4


def test_resize_attention_biases_loads_a_224_checkpoint():
    src = lsnet.create_model("lsnet_t")
    with torch.no_grad():
        for n, p in src.named_parameters():
            if n.endswith("attention_biases"):
                p.copy_(torch.full_like(p, 0.25))  # a constant table stays constant under bicubic resizing
    dst = lsnet.create_model("lsnet_t", img_size=(128, 192))
    with pytest.raises(lsnet.CheckpointError):  # shapes differ: the checked loader refuses
        lsnet.checkpoint.load_state_dict(dst, src.state_dict())
    dst.load_state_dict(lsnet.model.resize_attention_biases(dst, src.state_dict()))
    b = dst.blocks4[3].mixer.m.attention_biases
    assert b.shape == (4, 6) and torch.allclose(b, torch.full_like(b, 0.25))


def test_efficientformerv2_bias_tables_built_for_the_hw_grid():
    # 128x192: stem /4 -> 32x48, 16x24, 8x12 (stage 3, attended at stride 2: 4x6), 4x6 (stage 4)
    model = efficientformerv2.build("efficientformerv2_s0", img_size=(128, 192))
    tables = [(type(m).__name__, tuple(m.attention_biases.shape), tuple(m.attention_bias_idxs.shape))
              for m in model.modules() if isinstance(m, (efficientformerv2.Attention2d,
                                                         efficientformerv2.Attention2dDownsample))]
    assert tables == ([("Attention2d", (8, 24), (24, 24))] * 2 + [("Attention2dDownsample", (8, 96), (24, 96))]
                      + [("Attention2d", (8, 24), (24, 24))] * 2)
    assert torch.equal(model.stages[3].blocks[-1].token_mixer.attention_bias_idxs, _levit_loop(4, 6)[0])
    down = efficientformerv2.Attention2dDownsample(8, 8, resolution=(5, 6), num_heads=2)
    assert down.attention_bias_idxs.shape == (9, 30)
    assert down.attention_bias_idxs[4, 0] == 2 * 6 + 2  # query (2, 2) meets key (0, 0) at |dy| * W + |dx|
    assert down.attention_bias_idxs[7, 29] == 0 * 6 + 3  # query (4, 2) meets key (4, 5) at offset (0, 3)
    with pytest.raises(ValueError, match="even stage-3 map on both axes"):
        efficientformerv2.build("efficientformerv2_s0", img_size=(128, 208))  # stage-3 map 8x13


def test_efficientvit_windows_built_for_the_hw_grid():
    # 128x192: stage maps 8x12, 4x6, 2x3 -> windows 7x7 (padded), 4x6, 2x3
    model = efficientvit.build("efficientvit_m0", img_size=(128, 192))
    wins = [(m.window_hw, m.attn.attention_biases.shape[1], tuple(m.attn.attention_bias_idxs.shape))
            for m in model.modules() if isinstance(m, efficientvit.LocalWindowAttention)]
    assert wins == [((7, 7), 49, (49, 49))] + [((4, 6), 24, (24, 24))] * 2 + [((2, 3), 6, (6, 6))] * 3
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 128, 192)).shape == (1, 1000)


def test_semantic_fpn_output_shape_and_settings():
    seg = dense.for_task(lsnet.create_model("lsnet_t", img_size=(H, W)), "segment")
    assert isinstance(seg, dense.SemanticFPN) and seg.num_classes == 150 and seg.output_stride == 1
    assert seg.neck.strides == (8, 16, 32, 64)
    assert [c.out_channels for c in seg.neck.lateral_convs] == [256] * 4
    assert [sum(isinstance(m, lsnet.layers.Conv2d_BN) for m in h) for h in seg.decode_head.scale_heads] == [1, 1, 2, 3]
    assert seg.decode_head.conv_seg.in_channels == 128 and seg.decode_head.dropout.p == 0.1
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        seg.eval()
        out = seg(x)
        assert out.shape == (2, 150, H, W)
        torch.testing.assert_close(seg(x), out)  # dropout off at inference
        seg.train()
        assert not torch.allclose(seg(x), out)  # ... and on in training
    head_only = dense.SemanticFPN(dense.Backbone(lsnet.create_model("lsnet_t", img_size=(H, W))), num_classes=19,
                                  resize_to_input=False).eval()
    assert head_only.output_stride == 8
    with torch.no_grad():
        assert head_only(x).shape == (2, 19, H // 8, W // 8)


def test_semantic_fpn_on_three_level_backbones():
    # SHViT / EfficientViT (strides 16/32/64): EfficientViTFPN's extra transposed-conv level gives 8/16/32/64
    seg = dense.SemanticFPN(baselines.create_model("shvit_s1", img_size=(H, W)), resize_to_input=False).eval()
    assert seg.neck.strides == (8, 16, 32, 64) and len(seg.neck.extra_trans_convs) == 1
    with torch.no_grad():
        assert seg(torch.randn(1, 3, H, W)).shape == (1, 150, H // 8, W // 8)
    seg4 = dense.SemanticFPN(baselines.create_model("repvit_m0_9"), resize_to_input=False).eval()
    assert seg4.neck.strides == (4, 8, 16, 32) and len(seg4.neck.extra_trans_convs) == 0
    with torch.no_grad():
        assert seg4(torch.randn(1, 3, H, W)).shape == (1, 150, H // 4, W // 4)


def test_for_task():
    assert dense.TASKS == ("classify", "features", "segment")
    model = baselines.create_model("starnet_s1")
    assert dense.for_task(model, "classify") is model
    bb = dense.for_task(model, "features")
    assert isinstance(bb, dense.Backbone) and dense.for_task(bb, "features") is bb
    assert bb.stages is model.stages  # the model's own modules, not copies
    assert dense.for_task(model, "segment", num_classes=7).decode_head.conv_seg.out_channels == 7
    with pytest.raises(ValueError, match="classify, features, segment"):
        dense.for_task(model, "detect")


def test_a_model_without_layout_names_itself_and_the_fix():
    class MyNet(nn.Module):
        def forward(self, x):
            return x
    with pytest.raises(ValueError, match=r"MyNet.*register_layout"):
        dense.for_task(MyNet(), "features")
    dense.register_layout(MyNet, dense.Layout("mine", (), ("a", "b"), (0, 1), (2, 4)))
    try:
        net = MyNet()
        net.a, net.b = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 16, 3, 2, 1)
        bb = dense.Backbone(net)
        assert bb.channels == (8, 16) and [f.shape[1:] for f in bb(torch.randn(1, 3, 8, 8))] == [(8, 4, 4), (16, 2, 2)]
    finally:
        dense.LAYOUTS.pop(MyNet)


@pytest.mark.parametrize("name", ["mobilenetv4_conv_small", "efficientformerv2_s0", "fastvit_t8"])
def test_fused_backbone_equals_unfused(name, deterministic, rel_err):
    # MobileNetV4's stem BN is folded by its classifier's fuse(), which the backbone does itself
    bb = deterministic(dense.Backbone(create(name, img_size=(32, 64))))
    fused = lsnet.fuse(copy.deepcopy(bb))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 32, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for a, b in zip(fused(x), bb(x)):
            assert rel_err(a, b) < 1e-10


def test_fused_equals_unfused_float64_512_lsnet_t(deterministic, rel_err):
    seg = deterministic(dense.for_task(lsnet.create_model("lsnet_t", img_size=512), "segment"))
    fused = lsnet.fuse(copy.deepcopy(seg))
    assert not any(isinstance(m, (nn.BatchNorm2d, lsnet.model.LSConv)) for m in fused.modules())
    assert any(m.running_var.std() > 0.1 for m in seg.modules() if isinstance(m, nn.BatchNorm2d))  # non-trivial BN
    feats = {}
    seg.backbone.register_forward_hook(lambda m, i, o: feats.__setitem__("ref", o))
    fused.backbone.register_forward_hook(lambda m, i, o: feats.__setitem__("fused", o))
    x = torch.randn(1, 3, 512, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, out = seg(x), fused(x)
    assert ref.shape == (1, 150, 512, 512) and ref.abs().max() > 0
    assert [tuple(f.shape[2:]) for f in feats["ref"]] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    for a, b in zip(feats["fused"], feats["ref"]):
        assert rel_err(a, b) < 1e-12
    assert rel_err(out, ref) < 1e-12
