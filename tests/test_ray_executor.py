"""The Ray executor on a local multi-node cluster (every node on 127.0.0.1, no dashboard, small object
stores): placement, exclusive CPU slots, OOM ladders on one device, artifacts sent back, rows streamed
and equal to the inline executor's, a node lost mid-cell (error row, retry elsewhere), an interrupted
driver (running cells cancelled, finished rows kept), version skew, files over the artifact limit, lost calls
told by Ray's exception classes, and Ray missing (exit 2)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import run_bench  # noqa: E402
from suites.core.cell import Task  # noqa: E402
from suites.executors.ray import RayExecutor, loopback, project_revision, scheduler  # noqa: E402
from suites.executors.ray.scheduler import is_lost  # noqa: E402
from suites.core.schema import ROW_COLUMNS, read_jsonl  # noqa: E402
from suites.core import registry  # noqa: E402
from suites.core.cell import Cell, Context  # noqa: E402
from suites.sweep.rows import make_row  # noqa: E402
from suites.sweep.writer import ResultWriter  # noqa: E402

HERE = Path(__file__).resolve().parent
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 100 * 2**20}
FAST = ["--resolution", "64", "--warmup", "0", "--min-time", "0", "--min-samples", "3", "--threads", "1",
        "--no-progress", "--no-report"]
TIMING = {"latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_std",
          "latency_ms_ci_low", "latency_ms_ci_high", "n_samples", "stable", "warnings"}


@pytest.fixture(autouse=True)
def _bounded():
    """Every test ends within 60 s (SIGALRM raises in the driver, which waits in 1 s steps)."""
    def expired(signum, frame):
        raise TimeoutError("test exceeded 60 s")
    before = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU) and two 1-CPU nodes standing for machines ``machine_a`` and ``machine_b``.
    Their workers import the project and the toy suite from this checkout (PYTHONPATH)."""
    from ray.cluster_utils import Cluster
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), str(HERE.parent), before) if p)
    c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        c.add_node(**NODE, resources={"machine_a": 1})
        c.add_node(**NODE, resources={"machine_b": 1})
        with loopback():
            ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def toy():
    import tests.ray_toy_suite  # noqa: F401  (the checkout is on the path of the driver and of the workers)
    yield registry.get("raytoy")
    registry.unregister("raytoy")


def toy_task(model: str, sizes=(1,), ladder: bool = False, **opts) -> Task:
    options = registry.get("raytoy").options(**opts)
    return Task(tuple(Cell("raytoy", model, batch_size=b, threads=1, options=options) for b in sizes), ladder=ladder)


def collect(executor: RayExecutor, tasks: list[Task], run_dir: Path) -> list[dict]:
    writer = ResultWriter(run_dir, "test")
    try:
        for cell, out in executor.run(tasks, Context(run_dir=run_dir.resolve())):
            writer.add(make_row("test", cell, out))
    finally:
        executor.close()
    return writer.rows


def overlaps(rows: list[dict]) -> list[tuple[str, str]]:
    """Pairs of rows whose cells ran at the same time on the same node."""
    bad = []
    by_node: dict[str, list[dict]] = {}
    for r in rows:
        by_node.setdefault(r["extra"]["ray"]["node_id"], []).append(r["extra"]["ray"])
    for spans in by_node.values():
        spans.sort(key=lambda s: s["started"])
        bad += [(a["node"], b["node"]) for a, b in zip(spans, spans[1:]) if b["started"] < a["ended"]]
    return bad


def test_every_node_runs_each_cell_exclusively_and_files_come_back(cluster, toy, tmp_path):
    tasks = [toy_task(f"m{i}", toy_sleep=0.2) for i in range(3)]
    rows = collect(RayExecutor(address=cluster.address, devices="all:cpu"), tasks, tmp_path)
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    nodes = {r["extra"]["ray"]["node"] for r in rows}
    assert len(rows) == 9 and {"machine_a", "machine_b"} < nodes and len(nodes) == 3
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert len({r["host"] for r in rows}) == 3   # one hostname on this machine: the node tells them apart
    assert not overlaps(rows)
    for r in rows:   # written on the node in a temporary folder, sent back into the driver's run folder
        path = Path(r["extra"]["file"])
        assert path.parent == tmp_path.resolve() / "toy" and path.read_text() == f"{r['model']} 1"


def test_pool_places_on_chosen_nodes_and_ladders_stay_on_one_device(cluster, toy, tmp_path):
    tasks = [toy_task(f"m{i}", toy_sleep=0.3) for i in range(4)]
    tasks.append(toy_task("ladder", sizes=(1, 2, 4, 8), ladder=True, toy_oom_at=4))
    rows = collect(RayExecutor(address=cluster.address, nodes="machine_a,machine_b", devices="cpu"), tasks, tmp_path)
    assert {r["extra"]["ray"]["node"] for r in rows if "ray" in r["extra"]} == {"machine_a", "machine_b"}
    assert sorted(r["model"] for r in rows if r["model"].startswith("m")) == ["m0", "m1", "m2", "m3"]
    ladder = [r for r in rows if r["model"] == "ladder"]
    assert [(r["batch_size"], r["status"]) for r in ladder] == [(1, "ok"), (2, "ok"), (4, "oom"), (8, "skipped")]
    assert len({r["extra"]["ray"]["node"] for r in ladder[:3]}) == 1
    assert not overlaps([r for r in rows if "ray" in r["extra"]])
    one = collect(RayExecutor(address=cluster.address, nodes=["machine_b"], devices="cpu"), tasks[:2], tmp_path / "b")
    assert {r["extra"]["ray"]["node"] for r in one} == {"machine_b"}


def test_rows_equal_the_inline_executors_but_timings_host_and_run_id(cluster, tmp_path, capsys):
    common = ["--suite", "flops,latency", "--models", "lsnet_t", "--device", "cpu", *FAST]
    # Ray runs one cell per task (the sequential protocol): compare with the local executor on the same protocol
    assert run_bench.main([*common, "--isolation", "inline", "--protocol", "sequential",
                           "--out", str(tmp_path / "local")]) == 0
    assert run_bench.main([*common, "--executor", "ray", "--ray-address", cluster.address, "--nodes", "machine_a",
                           "--out", str(tmp_path / "ray")]) == 0
    local, remote = read_jsonl(tmp_path / "local" / "results.jsonl"), read_jsonl(tmp_path / "ray" / "results.jsonl")
    assert len(local) == len(remote) == 2
    for a, b in zip(local, remote):
        skip = TIMING | {"host", "run_id"}
        assert {c: a[c] for c in ROW_COLUMNS if c not in skip} == {c: b[c] for c in ROW_COLUMNS if c not in skip}
        assert a["cell"] == b["cell"] and b["extra"]["ray"]["node"] == "machine_a"
        measured = {"ray", "cpu_contention", "n_stalls", "resampled_s", "round_medians_ms",   # facts of each run,
                    "round_starts_unix_s"}                                            # not of the cell
        assert {k: v for k, v in a["extra"].items() if k not in measured} == \
            {k: v for k, v in b["extra"].items() if k not in measured and k in a["extra"]}
    env = json.loads((tmp_path / "ray" / "env.json").read_text())
    assert remote[0]["host"] in env["hosts"] and env["hosts"][remote[0]["host"]]["ray_node"] == "machine_a"
    assert run_bench.main(["--list", "--executor", "ray", "--ray-address", cluster.address]) == 0
    listed = capsys.readouterr().out
    assert "machine_a" in listed and "machine_b" in listed and "cpu (1 CPUs)" in listed


def test_rows_stream_and_an_interrupt_cancels_running_cells(cluster, toy, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    tasks = [toy_task("fast0"), toy_task("fast1"), toy_task("slow", toy_hold=str(hold))]
    executor = RayExecutor(address=cluster.address, nodes=["machine_a"], devices="cpu")
    writer = ResultWriter(tmp_path / "run", "test")
    gen = executor.run(tasks, Context(run_dir=(tmp_path / "run").resolve()))
    try:
        for _ in range(2):
            cell, out = next(gen)
            writer.add(make_row("test", cell, out))
        assert [r["model"] for r in read_jsonl(writer.jsonl_path)] == ["fast0", "fast1"]   # on disk already
        deadline = time.time() + 20
        while not list(hold.glob("started-*")) and time.time() < deadline:
            time.sleep(0.05)
        assert list(hold.glob("started-*")), "the slow cell never started"
        with pytest.raises(KeyboardInterrupt):
            gen.throw(KeyboardInterrupt)
        deadline = time.time() + 15   # the slot (holding machine_a's CPU) is killed, so its CPU comes back
        while ray.available_resources().get("machine_a", 0) < 1 or ray.available_resources().get("CPU", 0) < 3:
            assert time.time() < deadline, ray.available_resources()
            time.sleep(0.1)
        (hold / "release").write_text("")
        time.sleep(0.3)
        assert not list(hold.glob("finished-*"))   # the cancelled cell never finished
        assert [r["model"] for r in read_jsonl(writer.jsonl_path)] == ["fast0", "fast1"]
    finally:
        executor.close()


def test_a_node_lost_mid_cell_gives_an_error_row_then_a_retry_elsewhere(cluster, toy, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    added = {name: cluster.add_node(**NODE, resources={name: 1}) for name in ("machine_c", "machine_d")}
    extra = {n.node_id: n for n in added.values()}
    names = {n.node_id: name for name, n in added.items()}
    try:
        executor = RayExecutor(address=cluster.address, nodes="machine_c,machine_d", devices="cpu")
        rows: list[dict] = []
        worker = threading.Thread(target=lambda: rows.extend(collect(executor, [toy_task("slow", toy_hold=str(hold))],
                                                                      tmp_path / "run")), daemon=True)
        worker.start()
        deadline = time.time() + 30
        while not list(hold.glob("started-*")) and time.time() < deadline:
            time.sleep(0.05)
        started = list(hold.glob("started-*"))
        assert started, "the slow cell never started"
        lost_id = started[0].name.split("-")[1]
        lost = names[lost_id]
        cluster.remove_node(extra.pop(lost_id))
        (hold / "release").write_text("")
        worker.join(40)
        assert not worker.is_alive()
        assert [r["status"] for r in rows] == ["error", "ok"], rows
        assert f"node {lost}" in rows[0]["error"] and "lost" in rows[0]["error"]
        assert rows[1]["extra"]["ray"]["node"] != lost and rows[1]["extra"]["ray"]["attempt"] == 1
        assert read_jsonl(tmp_path / "run" / "results.jsonl") == json.loads(json.dumps(rows, default=str))
    finally:
        for node in extra.values():
            cluster.remove_node(node)


def test_version_skew_gives_one_clear_error_row(cluster, toy, tmp_path):
    driver = "lsnet-bench 0.0.0 (deadbeef)"
    rows = collect(RayExecutor(address=cluster.address, nodes="machine_b", devices="cpu", revision=driver),
                   [toy_task("m0")], tmp_path)
    assert len(rows) == 1 and rows[0]["status"] == "error"
    assert "machine_b" in rows[0]["error"] and driver in rows[0]["error"] and project_revision() in rows[0]["error"]


def test_files_over_the_artifact_limit_stay_on_the_node_with_a_warning(cluster, toy, tmp_path, monkeypatch):
    monkeypatch.setattr(scheduler, "ARTIFACT_LIMIT", 1)   # the toy's one file holds "m0 1"
    rows = collect(RayExecutor(address=cluster.address, nodes="machine_a", devices="cpu"), [toy_task("m0")], tmp_path)
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    assert "not sent back" in str(rows[0]["warnings"]), rows[0]["warnings"]
    assert not (tmp_path / "toy").exists()


def test_lost_calls_are_told_by_the_ray_exception_classes_subclasses_included():
    class Gone(ray.exceptions.NodeDiedError):
        pass
    assert is_lost(ray.exceptions.ActorDiedError()) and is_lost(Gone("node gone"))
    assert not is_lost(type("NodeDiedError", (Exception,), {})("same name, not Ray's class"))
    assert not is_lost(ValueError("a failed call"))


def test_without_ray_the_ray_executor_exits_2_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; import run_bench; "
            f"sys.exit(run_bench.main(['--executor', 'ray', '--suite', 'flops', '--out', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 2 and '.[cluster]' in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
