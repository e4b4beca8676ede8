"""ONNX export: both SKA translations against the reference at many shapes (dynamic batch), in ONNX
Runtime and OpenVINO, and whole zoo models in both engines against eager float32 (max |diff| / max
|ref| < 1e-4)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch

import lsnet
from suites.core.modelprep import seeded_weights
from suites.engines.onnx_export import export_onnx
from lsnet.ops import ska, ska_bn_add, ska_onnx, ska_reference
from suites.core import zoo


def _ort(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


class _Op(torch.nn.Module):
    def __init__(self, c: int, fused: bool):
        super().__init__()
        self.fused = fused
        self.scale = torch.nn.Parameter(torch.rand(c) + 0.5)
        self.shift = torch.nn.Parameter(torch.randn(c))

    def forward(self, x, w):
        return ska_bn_add(x, w, self.scale, self.shift, "torch") if self.fused else ska(x, w, "torch")


# the nodes that carry each translation's work (and that the other one does not use)
SIGNATURE = {"shift": ("Pad", "Sum"), "conv": ("Conv", "ReduceSum")}


@pytest.mark.parametrize("translation", ska_onnx.TRANSLATIONS)
@pytest.mark.parametrize("c, cw, k, h, wd", [(16, 4, 3, 9, 7), (12, 12, 5, 6, 11), (8, 2, 7, 13, 13)])
@pytest.mark.parametrize("fused", [False, True], ids=["ska", "ska_bn_add"])
def test_ska_translation_equals_the_reference(tmp_path, translation, c, cw, k, h, wd, fused):
    op = _Op(c, fused).eval()
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, c, h, wd, generator=g), torch.randn(2, cw, k * k, h, wd, generator=g)
    ska_onnx.register(translation=translation)
    path = tmp_path / "op.onnx"
    with torch.no_grad():
        torch.onnx.export(op, (x, w), str(path), input_names=["x", "w"], output_names=["y"], dynamo=False,
                          dynamic_axes={"x": {0: "n"}, "w": {0: "n"}, "y": {0: "n"}}, opset_version=ska_onnx.OPSET)
    types = {n.op_type for n in onnx.load(str(path)).graph.node}
    other = next(t for t in ska_onnx.TRANSLATIONS if t != translation)
    assert set(SIGNATURE[translation]) <= types and not set(SIGNATURE[other]) & types
    assert not {"Im2Col", "Col2Im", "Gather"} & types
    sess = _ort(path)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    for n in (1, 3):                                          # the batch axis is dynamic
        xn, wn = torch.randn(n, c, h, wd, generator=g), torch.randn(n, cw, k * k, h, wd, generator=g)
        ref = ska_reference(xn, wn)
        if fused:
            ref = xn + ref * op.scale.detach().view(1, c, 1, 1) + op.shift.detach().view(1, c, 1, 1)
        out = sess.run(None, {"x": xn.numpy(), "w": wn.numpy()})[0]
        assert _rel(out, ref.numpy()) < 1e-5
        out_ov = np.array(next(iter(compiled.create_infer_request().infer([xn.numpy(), wn.numpy()]).values())))
        assert _rel(out_ov, ref.numpy()) < 1e-5


@pytest.mark.parametrize("name, translation", [
    ("lsnet_t", "shift"), ("lsnet_t", "conv"), ("lsnet_s_distill", "conv"), ("lsnet_t_mixer_ls_k95", "shift"),
    ("repvit_m0_9", "shift"), ("efficientvit_m0", "shift"), ("fastvit_t8", "shift"), ("shvit_s1", "shift"),
    ("fasternet_t0", "shift"), ("starnet_s1", "shift")])   # every family
def test_zoo_model_parity_in_onnxruntime_and_openvino(tmp_path, name, translation):
    with seeded_weights():
        model = lsnet.fuse(zoo.create(name, img_size=64).eval())
    path = export_onnx(model, tmp_path / f"{name}.onnx", resolution=64, fused=False, ska=translation)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x).numpy()
    assert _rel(_ort(path).run(None, {"x": x.numpy()})[0], ref) < 1e-4
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": 1})
    out = np.array(next(iter(compiled.create_infer_request().infer([x.numpy()]).values())))
    assert _rel(out, ref) < 1e-4


def test_export_by_name_and_bad_dtype(tmp_path):
    path = export_onnx("starnet_s1", tmp_path / "s.onnx", resolution=64)
    (inp,) = onnx.load(str(path)).graph.input
    assert inp.name == "x" and inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.raises(ValueError, match="dtype 'bfloat16' is not one of float32, float16"):
        export_onnx("starnet_s1", tmp_path / "b.onnx", dtype="bfloat16")
    with pytest.raises(ValueError, match="ska='unfold' is not one of shift, conv"):
        export_onnx("lsnet_t", tmp_path / "u.onnx", ska="unfold")
    with pytest.raises(ValueError, match="unknown SKA translation 'im2col'; choose from shift, conv"):
        ska_onnx.register(translation="im2col")
