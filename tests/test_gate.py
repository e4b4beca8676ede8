"""The A/B regression gate: its rule on paired ratios, the re-run before a failure stands, end to end
on a throwaway git repository whose cases sleep (so a planted 3x slowdown is deterministic), and its
real cases: each runs on this tree, the LSNet ones on a tree holding only ``lsnet``, and the
pytest-benchmark benchmarks time every one of them."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from suites.gate import cases, gate, worker

CASES = textwrap.dedent('''
    import time
    def sleepy():
        import slow
        return lambda: time.sleep(slow.DELAY)
    def only_new():
        import newmod
        return lambda: None
    CASES = {"sleepy": sleepy, "only_new": only_new}
''')


def test_rule_on_paired_ratios():
    same = [0.97, 1.02, 1.0, 0.99, 1.03, 1.01, 0.98, 1.0, 1.04, 0.96, 1.0, 1.02]
    assert gate.judge("c", same).status == "pass"
    assert gate.judge("c", [2 * r for r in same]).status == "fail"
    assert gate.judge("c", [1.2 * r for r in same]).status == "pass"            # under the 1.3 limit
    noisy = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    v = gate.judge("c", noisy)
    assert v.low <= 1.0 and v.status == "pass"                                  # the interval keeps it open
    assert gate.median_interval(same) == gate.median_interval(same)             # fixed seed
    line = gate.judge("c", [2 * r for r in same]).line()
    assert line.startswith("FAIL c: 2.000x base, 95% interval [") and "fails above 1.30x" in line


def test_a_failure_stands_only_when_the_rerun_confirms_it():
    slow, fine = [1.6] * 8, [1.0] * 8
    calls = []

    def measure(answers):
        def m(case, swapped):
            calls.append((case, swapped))
            return answers[swapped]
        return m
    (v,) = gate.run_gate(["a"], measure({False: slow, True: fine}))
    assert v.status == "pass" and "did not confirm" in v.note and calls == [("a", False), ("a", True)]
    (v,) = gate.run_gate(["a"], measure({False: slow, True: slow}))
    assert v.status == "fail" and "confirmed" in v.note
    (v,) = gate.run_gate(["a"], lambda case, swapped: "the base cannot run it: ImportError")
    assert v.status == "new" and v.line().startswith("NEW  a: not gated")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "lsnet").mkdir(parents=True)
    (r / "lsnet" / "__init__.py").write_text("")
    (r / "slow.py").write_text("DELAY = 0.002\n")
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(r), *cmd], check=True)
    (tmp_path / "cases.py").write_text(CASES)
    return r


def _gate(repo: Path, *args: str) -> int:
    return gate.main(["--repo", str(repo), "--cases", str(repo.parent / "cases.py"), "--base", "HEAD",
                      "--blocks", "4", *args])


def test_end_to_end_unchanged_passes_and_a_planted_slowdown_fails(repo, capsys):
    assert _gate(repo, "--only", "sleepy") == 0
    assert "PASS sleepy" in capsys.readouterr().out
    (repo / "slow.py").write_text("DELAY = 0.006\n")                        # the candidate is 3x slower
    (repo / "newmod.py").write_text("")                                    # and has a module the base lacks
    assert _gate(repo) == 1
    out = capsys.readouterr().out
    assert "FAIL sleepy" in out and "confirmed" in out
    assert "NEW  only_new: not gated (the base cannot run it: ModuleNotFoundError" in out
    assert subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                          text=True).stdout.count("\n") == 1                # the base worktree is removed


def test_bad_input_exits_2(repo, capsys):
    assert _gate(repo, "--base", "no-such-ref") == 2
    assert "is not a commit of" in capsys.readouterr().err
    assert _gate(repo, "--only", "nope") == 2
    assert "unknown case(s) nope" in capsys.readouterr().err


def test_each_worker_imports_its_own_tree(repo, tmp_path):
    w = gate.Worker(repo, tmp_path / "cases.py")
    try:
        assert w.ask(where=True)["lsnet"] == str(repo / "lsnet" / "__init__.py")
    finally:
        w.close()


def test_every_case_builds_and_runs_once_on_this_tree():
    loaded = worker._load("gate_cases_test", gate.HERE / "cases.py")      # by path, as the worker loads it
    assert list(loaded.CASES) == list(cases.CASES)
    for name, case in loaded.CASES.items():
        assert case()() is not None, name


def test_lsnet_cases_run_against_a_base_holding_only_lsnet(tmp_path):
    """The cases file imports nothing of the project, so a base lacking ``suites`` or ``baselines`` still
    runs every case that needs only ``lsnet``; the others it reports (NEW), one by one."""
    top = ast.parse((gate.HERE / "cases.py").read_text()).body
    imported = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "torch"}, imported
    tree = tmp_path / "base"
    shutil.copytree(gate.REPO / "lsnet", tree / "lsnet", ignore=shutil.ignore_patterns("__pycache__"))
    w = gate.Worker(tree, gate.HERE / "cases.py")
    try:
        assert w.ask(where=True)["lsnet"] == str(tree / "lsnet" / "__init__.py")
        for name in ("ska_torch_forward", "lsnet_t_fused_bs1"):
            assert w.ask(setup=name) == {"ok": True}, name
        ans = w.ask(setup="repvit_m0_9_fused_bs1")
        assert not ans["ok"] and ans["error"].startswith("ModuleNotFoundError: No module named 'suites'")
    finally:
        w.close()


def test_the_benchmarks_time_every_case_and_no_variant_repeats_one():
    from tests.benchmarks import test_bench_cases, test_bench_lsnet, test_bench_train
    (mark,) = [m for m in test_bench_cases.test_gate_case.pytestmark if m.name == "parametrize"]
    assert mark.args[0] == "case" and list(mark.args[1]) == list(cases.CASES)
    gated = {(c.func, tuple(cases.params(c).items())) for c in cases.CASES.values()}
    for name, variant in {**test_bench_lsnet.VARIANTS, **test_bench_train.VARIANTS}.items():
        assert (variant.func, tuple(cases.params(variant).items())) not in gated, f"{name} is a gate case"
