"""Suite descriptors: what a suite is, declared in one place by the suite's own module.

A suite module defines ``run(cell, ctx) -> dict`` and registers a :class:`Suite` with
:func:`register`. The CLI builds its flags and checks from the registered descriptors; the
planner reads ``plan``/``default_batch_sizes``/``mode``/``skip``/``expand``; executors read
``own_process`` and import ``module`` in worker processes. Adding a suite is one module plus
its name in ``BUILTIN``.

Options are a frozen dataclass per suite; each field becomes ``--field-name`` (its ``metadata``
holds ``help`` and optionally ``choices`` and ``max``, the largest value a number may take);
``validate()``, when defined, raises ``ValueError`` before any cell runs; ``ignored()``, when defined,
says which given options the configuration ignores (a warning each).
"""
from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BUILTIN = ("latency", "throughput", "memory", "flops", "accuracy", "profile", "ops", "train")
PLANS = ("grid", "per_model", "largest_batch", "ladder")
MODES = ("inference", "training")     # what a suite asks of an engine; engines declare the modes they run
_REGISTRY: dict[str, "Suite"] = {}


@dataclass(frozen=True)
class NoOptions:
    """A suite without options of its own."""


def _never(cell: Any) -> bool:
    return False


@dataclass(frozen=True)
class Suite:
    """A suite's descriptor.

    ``plan``: ``grid`` (one cell per model x engine x device x dtype x batch size), ``per_model``
    (one cell per model: on the CPU in float32, eager), ``largest_batch`` (grid at the largest batch
    size only), ``ladder`` (without ``--batch-sizes``: powers of two up to ``--max-batch``, run
    serially and stopped at the first out-of-memory batch). ``expand`` turns one planned cell into
    several (e.g. one per operator shape and backend). ``max_batch`` is the ladder's own top batch
    per device kind (``cpu``, ``cuda``) when ``--max-batch`` is not given (default:
    ``suites.sweep.plan.DEFAULT_MAX_BATCH``). ``console_summary``, when set, turns the run's rows of this
    suite into extra lines printed after the summary table. ``bench`` (timed suites) prepares a
    cell for timing without timing it, so that :mod:`suites.interleave` can measure a group of
    cells round by round; ``reference_cell`` names the cell a cell's ratio is taken against.
    ``mode``: what the suite asks of an engine (one of :data:`MODES`; every engine that declares the mode
    runs it), or None for a suite that measures without one (its rows are labelled ``eager``). ``skip``
    says why a cell cannot run (the planner makes it a skipped row before anything runs); ``describe``
    gives the facts a cell's row carries without measuring (kept on skipped rows too). ``tasks``: the
    ``--task`` values it runs (:data:`suites.core.schema.TASKS`; None = all); cells of another task are
    skipped rows saying ``tasks_why``.
    """
    name: str
    run: Callable[..., dict[str, Any]]
    module: str
    description: str
    plan: str = "grid"
    default_batch_sizes: tuple[int, ...] = (1,)
    own_process: Callable[[Any], bool] = _never
    options: type = NoOptions
    mode: str | None = "inference"
    expand: Callable[[Any], list[Any]] | None = None
    timed: bool = False    # its rows are timings (``--repeats`` re-measures them in fresh processes)
    max_batch: Mapping[str, int] | None = None
    console_summary: Callable[[list[dict[str, Any]]], str] | None = None
    bench: Callable[..., Any] | None = None          # (cell, ctx) -> context manager of a timing.Bench
    reference_cell: Callable[[Any], Any] | None = None   # a cell's reference cell (default: the reference model)
    skip: Callable[[Any], str | None] | None = None      # cell -> why it cannot run, or None
    describe: Callable[[Any], dict[str, Any]] | None = None   # cell -> the facts of its row known before it runs
    tasks: tuple[str, ...] | None = None   # the --task values it runs (None: every one of schema.TASKS)
    tasks_why: str = ""                    # why it runs only those (the skipped rows of the others say it)

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"suite {self.name!r}: mode {self.mode!r} is not one of {', '.join(MODES)} (or None)")
        if self.plan not in PLANS:
            raise ValueError(f"suite {self.name!r}: plan {self.plan!r} is not one of {', '.join(PLANS)}")
        if self.max_batch is not None:
            bad = {k: v for k, v in self.max_batch.items() if k not in ("cpu", "cuda") or int(v) < 1}
            if bad or set(self.max_batch) != {"cpu", "cuda"}:
                raise ValueError(f"suite {self.name!r}: max_batch must give a positive batch for 'cpu' and 'cuda', "
                                 f"got {dict(self.max_batch)}")

    def skip_reason(self, cell: Any) -> str | None:
        """Why ``cell`` cannot run in this suite (it becomes a skipped row without running), or None: a task
        the suite does not run (``tasks``), else its own ``skip``."""
        task = getattr(cell, "task", "classify")
        if self.tasks is not None and task not in self.tasks:
            why = f": {self.tasks_why}" if self.tasks_why else ""
            return f"suite {self.name!r} runs --task {'/'.join(self.tasks)} only, not {task}{why}"
        return self.skip(cell) if self.skip is not None else None

    def facts(self, cell: Any) -> dict[str, Any]:
        """What the row of ``cell`` holds before it is measured (``describe``; empty without it)."""
        return self.describe(cell) if self.describe is not None else {}

    def interleaves(self, cell: Any) -> bool:
        """Whether ``cell`` is measured in a group, round by round (the interleaved protocol)."""
        return self.bench is not None and cell.protocol == "interleaved"

    def reference_of(self, cell: Any) -> Any:
        """The cell ``cell``'s ratio is taken against (None without a reference)."""
        if self.reference_cell is not None:
            return self.reference_cell(cell)
        return cell.with_(model=cell.reference) if cell.reference else None


def register(suite: Suite) -> Suite:
    """Add ``suite`` to the registry (replacing one of the same name); returns it."""
    _REGISTRY[suite.name] = suite
    return suite


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtin() -> None:
    for name in BUILTIN:
        if name not in _REGISTRY:
            importlib.import_module(f"suites.{name}")


def names() -> list[str]:
    """Every registered suite name (built-in first, in ``BUILTIN`` order)."""
    _load_builtin()
    return [n for n in BUILTIN if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN]


def get(name: str) -> Suite:
    """The descriptor of ``name``; ValueError naming the suites when unknown."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(f"suites.{name}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[name]


@dataclass(frozen=True)
class OptionFlag:
    """One ``--flag`` built from an options field, shared by every suite that declares the field."""
    field: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    suites: tuple[str, ...]

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


def _scalar_type(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def ignored_options(opts: Any) -> list[str]:
    """Why each given option of ``opts`` (a suite's options) has no effect (``ignored()``; none without it)."""
    ignored = getattr(opts, "ignored", None)
    return list(ignored()) if callable(ignored) else []


def option_flags() -> list[OptionFlag]:
    """Every option field of every registered suite, one flag per field name."""
    out: dict[str, OptionFlag] = {}
    for name in names():
        cls = _REGISTRY[name].options
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            typ = _scalar_type(hints[f.name])
            prev = out.get(f.name)
            if prev is not None and prev.type is not typ:
                raise TypeError(f"option {f.name!r} is {prev.type.__name__} in {prev.suites} but "
                                f"{typ.__name__} in suite {name!r}; one option name, one type")
            out[f.name] = OptionFlag(f.name, typ, f.default, f.metadata.get("help", ""), f.metadata.get("choices"),
                                     (prev.suites if prev else ()) + (name,))
    return list(out.values())


def build_options(suite: Suite, given: dict[str, Any]) -> Any:
    """The suite's options from the user's values (``None`` = not given); ``validate()`` applied."""
    fields = {f.name: f for f in dataclasses.fields(suite.options)}
    opts = suite.options(**{k: v for k, v in given.items() if k in fields and v is not None})
    for name, f in fields.items():
        upper, value = f.metadata.get("max"), getattr(opts, name)
        if upper is not None and value is not None and value > upper:
            raise ValueError(f"--{name.replace('_', '-')} {value} is above its bound {upper:g}; give at most {upper:g}")
    validate = getattr(opts, "validate", None)
    if callable(validate):
        validate()
    return opts
