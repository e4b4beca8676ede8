"""Models a user brings (``--models module.path:callable``, ``timm:NAME``) are measured like zoo models,
labelled by family, and a model that cannot be imported or built is one line, exit 2."""
from __future__ import annotations

import json
import sys
import types

import pytest
from torch import nn

import run_bench
from suites.core import zoo

FAST = ["--device", "cpu", "--threads", "1", "--resolution", "64", "--warmup", "0", "--min-time", "0",
        "--max-time", "0.3", "--burst", "0.02", "--min-samples", "3", "--no-progress", "--no-report"]

NETS = '''
from torch import nn

def tiny(num_classes=1000):
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))

def sized(num_classes=1000, img_size=224, **kw):
    assert img_size == 64, img_size
    return tiny(num_classes)

def broken():
    raise RuntimeError("no such layer")

def not_a_model():
    return 42

NOT_CALLABLE = 3
'''


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """A package ``mypkg`` in the working folder, as a user's project has it."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    yield tmp_path
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_a_users_model_is_measured_beside_lsnet_in_every_kind_of_cell(user_code):
    out = user_code / "run"
    assert run_bench.main(["--suite", "latency,flops,memory", "--models", "mypkg.nets:tiny,mypkg.nets:sized,lsnet_t",
                           "--batch-sizes", "1", "--out", str(out), *FAST]) == 0
    rows = _rows(out)
    mine = [r for r in rows if r["model"].startswith("mypkg.nets:")]
    assert {r["suite"] for r in mine} == {"latency", "flops", "memory"}        # memory: in a worker process
    assert all(r["status"] == "ok" and r["family"] == "user" for r in mine), mine
    lat = next(r for r in mine if r["suite"] == "latency" and r["model"] == "mypkg.nets:tiny")
    assert lat["ref_model"] == "lsnet_t" and lat["ratio_ci_high"] < 1               # paired with LSNet-T


@pytest.mark.parametrize("model, needle", [
    ("mypkg.nets:nope", "cannot import 'nope' from 'mypkg.nets'"),
    ("nosuchpkg.nets:tiny", "cannot import 'tiny' from 'nosuchpkg.nets'"),
    ("mypkg.nets:broken", "building it failed (RuntimeError: no such layer)"),
    ("mypkg.nets:not_a_model", "the callable returned int, not a torch nn.Module"),
    ("mypkg.nets:NOT_CALLABLE", "is not callable"),
    ("timm:resnet18", "needs timm, which is not installed"),
])
def test_a_model_that_cannot_be_imported_or_built_is_one_line_exit_2(user_code, capsys, monkeypatch, model, needle):
    monkeypatch.setitem(sys.modules, "timm", None)          # timm absent (it is never required)
    assert run_bench.main(["--suite", "flops", "--models", model, "--out", str(user_code / "r"), "--device", "cpu",
                           "--resolution", "64", "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (user_code / "r" / "results.csv").exists()


def test_timm_models_resolve_through_timm_when_it_is_installed(monkeypatch):
    made = []

    def create_model(name, pretrained=False, num_classes=1000, **kw):
        made.append((name, pretrained, num_classes))
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    spec = zoo.spec("timm:resnet18")
    assert spec.family == "timm"
    zoo.create("timm:resnet18", num_classes=7)
    assert made == [("resnet18", False, 7)]                  # never downloads weights
