"""The regression gate: base and candidate measured side by side on this machine, in one job.

``python -m suites.gate [--base REF]`` (or ``lsnet-bench gate``, which calls :func:`main`) checks out
REF (default: the commit in ``suites/gate/BASE``) in a temporary git worktree, starts one
``suites/gate/worker.py`` process on each tree (the candidate is the working tree) and runs every
case of the candidate's ``suites/gate/cases.py`` in both trees, interleaved in blocks
A B B A so that drift of the machine hits both sides alike. Each block gives one paired ratio
(candidate time / base time); a case FAILS when the median ratio exceeds ``--ratio-limit`` (1.3)
and the lower end of its bootstrap 95% interval exceeds ``--low-limit`` (1.15). A failing case is
measured again with fresh processes and the sides' order swapped, and fails only if that confirms
it. A case the base cannot run is NEW (reported, not gated). Exit status: 0 pass, 1 fail, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE_FILE = HERE / "BASE"
RATIO_LIMIT, LOW_LIMIT = 1.3, 1.15
BLOCKS, ROUND_SECONDS, BOOTSTRAP, SEED = 12, 0.04, 2000, 0


class GateError(Exception):
    """Bad input: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Verdict:
    case: str
    status: str                  # pass | fail | new
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    note: str = ""

    def line(self, ratio_limit: float = RATIO_LIMIT, low_limit: float = LOW_LIMIT) -> str:
        if self.status == "new":
            return f"NEW  {self.case}: not gated ({self.note})"
        return (f"{self.status.upper():4} {self.case}: {self.ratio:.3f}x base, 95% interval [{self.low:.3f}, "
                f"{self.high:.3f}] (fails above {ratio_limit:.2f}x with the interval above {low_limit:.2f}x)"
                + (f"; {self.note}" if self.note else ""))


def median_interval(ratios: Sequence[float], resamples: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """Bootstrap 95% interval of the median of ``ratios`` (a fixed seed: the same samples, the same verdict)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def judge(case: str, ratios: Sequence[float], ratio_limit: float = RATIO_LIMIT,
          low_limit: float = LOW_LIMIT) -> Verdict:
    """pass or fail from the paired ratios of one case."""
    med = statistics.median(ratios)
    low, high = median_interval(ratios)
    failed = med > ratio_limit and low > low_limit
    return Verdict(case, "fail" if failed else "pass", med, low, high)


class Worker:
    """A ``suites/gate/worker.py`` process (this tree's) importing the project from ``tree``."""

    def __init__(self, tree: Path, cases: Path):
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
        self.tree = tree
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py"), str(cases)], cwd=str(tree),
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def ask(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the gate worker on {self.tree} exited (code {self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


Measure = Callable[[str, bool], "list[float] | str"]


def paired_ratios(base: Worker, cand: Worker, case: str, blocks: int, swapped: bool = False) -> list[float] | str:
    """Candidate/base ratios of ``blocks`` A B B A blocks (B A A B when ``swapped``), or why the base
    cannot run the case."""
    for w in (base, cand):
        ans = w.ask(setup=case)
        if not ans["ok"]:
            if w is base:
                return f"the base cannot run it: {ans['error']}"
            raise RuntimeError(f"the candidate cannot run case {case}: {ans['error']}")
    per_call = cand.ask(round=case, calls=1)["seconds"]
    calls = max(1, round(ROUND_SECONDS / max(per_call, 1e-6)))
    first, second = (cand, base) if swapped else (base, cand)
    ratios = []
    for _ in range(blocks):
        t = {id(w): 0.0 for w in (base, cand)}
        for w in (first, second, second, first):
            t[id(w)] += w.ask(round=case, calls=calls)["seconds"]
        ratios.append(t[id(cand)] / t[id(base)])
    return ratios


def run_gate(cases: Sequence[str], measure: Callable[[str, bool], list[float] | str],
             ratio_limit: float = RATIO_LIMIT, low_limit: float = LOW_LIMIT,
             progress: Callable[[str], None] = lambda s: None) -> list[Verdict]:
    """Judge every case; a failure is measured again (``measure(case, swapped=True)``) before it stands."""
    verdicts = []
    for case in cases:
        ratios = measure(case, False)
        if isinstance(ratios, str):
            verdicts.append(Verdict(case, "new", note=ratios))
            progress(verdicts[-1].line(ratio_limit, low_limit))
            continue
        v = judge(case, ratios, ratio_limit, low_limit)
        if v.status == "fail":
            again = measure(case, True)
            if isinstance(again, str):
                raise RuntimeError(f"case {case}: the re-run could not measure it ({again})")
            second = judge(case, again, ratio_limit, low_limit)
            v = Verdict(case, second.status, second.ratio, second.low, second.high,
                        note=f"first run {v.ratio:.3f}x [{v.low:.3f}, {v.high:.3f}]; re-run with fresh processes, "
                             f"sides swapped, {'confirmed' if second.status == 'fail' else 'did not confirm'}")
        verdicts.append(v)
        progress(v.line(ratio_limit, low_limit))
    return verdicts


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GateError(f"git {' '.join(args)}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
    return proc.stdout.strip()


def default_base() -> str:
    """The commit recorded in suites/gate/BASE (its first non-comment line)."""
    for line in BASE_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            return line.strip()
    raise GateError(f"{BASE_FILE} holds no commit id")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m suites.gate`` and ``lsnet-bench gate``: the exit status (0 pass, 1 fail, 2 bad input)."""
    p = argparse.ArgumentParser(prog="lsnet-bench gate", description=__doc__.splitlines()[0])
    p.add_argument("--base", default=None, help="git ref of the base (default: the commit in suites/gate/BASE)")
    p.add_argument("--repo", default=str(REPO), help="the candidate tree (a git checkout; default: this one)")
    p.add_argument("--cases", default=str(HERE / "cases.py"),
                   help="the cases file, loaded by both sides (default: suites/gate/cases.py)")
    p.add_argument("--only", default=None, help="comma-separated case names (default: every case)")
    p.add_argument("--blocks", type=int, default=BLOCKS, help="A B B A blocks per case")
    p.add_argument("--ratio-limit", type=float, default=RATIO_LIMIT)
    p.add_argument("--low-limit", type=float, default=LOW_LIMIT)
    args = p.parse_args(argv)
    try:
        return _run(args)
    except GateError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    repo, cases_file = Path(args.repo).resolve(), Path(args.cases).resolve()
    _git(repo, "rev-parse", "--git-dir")
    ref = args.base or default_base()
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GateError:
        raise GateError(f"base {ref!r} is not a commit of {repo} (a shallow clone? run `git fetch --unshallow`)") \
            from None
    spec: dict[str, Any] = {}
    exec(compile(cases_file.read_text(), str(cases_file), "exec"), spec)   # case names only; no project import
    names = list(spec["CASES"]) if not args.only else [c for c in args.only.split(",") if c]
    unknown = sorted(set(names) - set(spec["CASES"]))
    if unknown:
        raise GateError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(spec['CASES'])}")
    with tempfile.TemporaryDirectory(prefix="lsnet-gate-") as tmp:
        base_tree = Path(tmp) / "base"
        _git(repo, "worktree", "add", "--detach", "--quiet", str(base_tree), commit)
        try:
            print(f"gate: base {ref} ({commit[:12]}) against the working tree of {repo}; {len(names)} cases, "
                  f"{args.blocks} A B B A blocks each, 1 thread", file=sys.stderr, flush=True)

            workers = [Worker(base_tree, cases_file), Worker(repo, cases_file)]

            def measure(case: str, swapped: bool) -> list[float] | str:
                """First runs share two long-lived workers; a re-run gets fresh ones, started in swapped order."""
                if not swapped:
                    return paired_ratios(*workers, case, args.blocks)
                cand = Worker(repo, cases_file)
                base = Worker(base_tree, cases_file)
                try:
                    return paired_ratios(base, cand, case, args.blocks, swapped=True)
                finally:
                    base.close()
                    cand.close()
            try:
                verdicts = run_gate(names, measure, args.ratio_limit, args.low_limit,
                                    progress=lambda line: print(line, flush=True))
            finally:
                for w in workers:
                    w.close()
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base_tree)],
                           capture_output=True)
    failed = [v for v in verdicts if v.status == "fail"]
    print(f"gate: {'FAILED' if failed else 'passed'}: {len(failed)} of {len(verdicts)} cases slower than the base allows")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
