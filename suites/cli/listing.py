"""``lsnet-bench list`` (= ``lsnet-bench --list``): models, suites, engines (available here or why not),
dtypes and visible devices; with ``--executor ray``, the cluster's nodes and their devices."""
from __future__ import annotations

from suites.cli.usage import PROG, OneLineParser, UsageError, csv_list


def main(argv: list[str]) -> int:
    """``lsnet-bench list [--executor ray [--ray-address A] [--nodes N,...]]``."""
    from suites import executors
    p = OneLineParser(prog=f"{PROG} list", description="List models, suites, engines (available here or why "
                                                       "not), dtypes and visible devices.")
    p.add_argument("--executor", default="local", choices=executors.EXECUTORS,
                   help="ray: also list the nodes of the Ray cluster")
    p.add_argument("--ray-address", default=None, help="Ray cluster: HOST:PORT, auto or local")
    p.add_argument("--nodes", default=None, help="comma-separated Ray nodes to list (default: every node)")
    args = p.parse_args(argv)
    return show(args.executor, args.ray_address, args.nodes)


def show(executor: str, ray_address: str | None, nodes: str | None) -> int:
    """Print everything :func:`list_everything` lists, and the Ray nodes when ``executor`` is ray."""
    print(list_everything())
    if executor == "ray":
        print(list_nodes(ray_address, csv_list(nodes or "")))
    return 0


def list_everything() -> str:
    """What a sweep can choose from on this machine, one item a line."""
    from suites import engines
    from suites.cli.configure import MODEL_GROUPS
    from suites.core import registry, zoo
    from suites.core.devices import device_name, visible_devices
    from suites.core.schema import DTYPES
    lines = ["models (name  family):"] + [f"  {n}  {zoo.spec(n).family}" for n in zoo.names("all")]
    lines += [f"model groups: {', '.join(MODEL_GROUPS)}", "suites:"]
    lines += [f"  {n}  {registry.get(n).description}" for n in registry.names()]
    lines += ["engines:"] + [f"  {name}  {'available' if why is None else 'unavailable: ' + why}"
                             for name, why in engines.availability().items()]
    lines += [f"dtypes: {', '.join(DTYPES)}", "visible devices:"]
    lines += [f"  {d}  {device_name(d)}" for d in visible_devices()]
    return "\n".join(lines)


def list_nodes(ray_address: str | None, nodes: list[str]) -> str:
    """The Ray cluster's (chosen) nodes with their devices; :class:`UsageError` when it cannot be reached."""
    try:
        from suites.executors import ray as ray_executor
        ray_executor.connect(ray_address)
        return ray_executor.describe_nodes(nodes)
    except (ImportError, ConnectionError, ValueError) as exc:
        raise UsageError(str(exc)) from None
