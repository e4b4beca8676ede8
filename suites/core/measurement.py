"""One timed measurement: samples grouped by round, stalls, and how far to trust it.

A :class:`Measurement` is what every timed suite's sampling produces (in the spirit of
``torch.utils.benchmark.Measurement``). Samples are milliseconds per call, grouped by *round*: in
the interleaved protocol a round is one short burst of this cell inside a round that visited every
cell of its group (:mod:`suites.interleave`); in the sequential protocol the whole cell is one round.

The interval of the median comes from the rounds, not from samples of one burst: with at least
``MIN_ROUNDS_FOR_CI`` rounds it is the distribution-free ~95% interval of the median of the round
medians (binomial order statistics), so the machine's drift between rounds widens it; with fewer
rounds (the sequential protocol) it is the same interval over the samples, widened to cover every
round's median. :func:`paired_ratio` gives a cell's time against a reference cell from per-round
ratios of rounds both took part in; in groups of at least ``MIN_CELLS_FOR_DRIFT`` cells the round
medians are first corrected for the drift within a round (:func:`drift_corrected`).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPREAD_LIMIT = 0.10      # stable when the median's interval is at most this fraction of the median
STALL_SHARE_LIMIT = 0.05
MIN_ROUNDS_FOR_CI = 6


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 100]) of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_ci(samples: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median: the order statistics at
    n/2 -+ z*sqrt(n)/2 (the binomial rule); (min, max) for fewer than 6 values."""
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return math.nan, math.nan
    if n < 6:
        return s[0], s[-1]
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return s[lo], s[hi]


@dataclass
class Measurement:
    """Kept samples (ms per call) by round, the stalls removed from them, and the trust verdict.

    ``starts``: the clock time (s) at which each round's burst began (for the drift record);
    ``paired``: the rounds were interleaved with the other cells of a group (ratios are paired);
    ``notes``: remarks on it (stalls removed, a ratio too wide), joined by the verdict's ``reasons``.
    """
    rounds: list[list[float]] = field(default_factory=list)
    n_stalls: int = 0
    starts: list[float] = field(default_factory=list)
    paired: bool = False
    resampled_s: float = 0.0
    calls_per_sample: int = 1
    notes: list[str] = field(default_factory=list)
    stable_override: bool | None = None    # set False by a check outside the samples (a ratio too wide)
    clock_offset: float = 0.0              # add to ``starts`` for Unix time
    judge_spread: bool = True              # False where a paired ratio judges the row instead (see verdict)

    @property
    def protocol(self) -> str:
        """The ``protocol`` column: ``interleaved`` when paired, else ``sequential``."""
        return "interleaved" if self.paired else "sequential"

    @property
    def samples(self) -> list[float]:
        return [s for r in self.rounds for s in r]

    @property
    def round_medians(self) -> list[float]:
        return [statistics.median(r) for r in self.rounds if r]

    @property
    def median(self) -> float:
        s = self.samples
        return statistics.median(s) if s else math.nan

    def interval(self) -> tuple[float, float]:
        """~95% interval of the median (see the module docstring)."""
        meds = self.round_medians
        if len(meds) >= MIN_ROUNDS_FOR_CI:
            return median_ci(meds)
        lo, hi = median_ci(self.samples)
        return min([lo, *meds]), max([hi, *meds])

    @property
    def spread(self) -> float:
        """Width of the median's interval relative to the median."""
        lo, hi = self.interval()
        med = self.median
        return (hi - lo) / med if med and not math.isnan(med) else math.inf

    def verdict(self, spread_limit: float = SPREAD_LIMIT) -> tuple[bool, list[str]]:
        """(stable, reasons): stalls above their share, an interval wider than ``spread_limit``.

        A paired cell with a ratio is judged by the ratio's interval instead of its own (``judge_spread``
        False): its own interval carries the machine's drift over the run, which the ratio cancels."""
        reasons = list(self.notes)
        stable = self.stable_override is not False
        kept = len(self.samples)
        if self.n_stalls > STALL_SHARE_LIMIT * max(kept, 1):
            stable = False
            reasons.append(f"stalls were {self.n_stalls} of {self.n_stalls + kept} samples")
        if self.judge_spread and self.spread > spread_limit:
            stable = False
            what = f"over {len(self.rounds)} rounds" if len(self.rounds) > 1 else \
                f"after {self.resampled_s:.1f} s of re-sampling"
            reasons.append(f"the median's interval is {100 * self.spread:.0f}% of the median (limit "
                           f"{100 * spread_limit:.0f}%) {what}")
        return stable, list(dict.fromkeys(reasons))

    @property
    def stable(self) -> bool:
        return self.verdict()[0]

    @property
    def reasons(self) -> list[str]:
        return self.verdict()[1]

    def summary(self) -> dict[str, Any]:
        """The latency columns of a row: p50/p90/p99/mean/std (ms), the median's interval, the sample count."""
        s = sorted(self.samples)
        lo, hi = self.interval()
        return {"latency_ms_p50": percentile(s, 50), "latency_ms_p90": percentile(s, 90),
                "latency_ms_p99": percentile(s, 99), "latency_ms_mean": statistics.fmean(s) if s else math.nan,
                "latency_ms_std": statistics.stdev(s) if len(s) > 1 else 0.0,
                "latency_ms_ci_low": lo, "latency_ms_ci_high": hi, "n_samples": len(s)}

    def merge(self, other: "Measurement") -> "Measurement":
        """Both measurements' rounds as one (e.g. the same cell measured in several processes)."""
        return Measurement(rounds=self.rounds + other.rounds, n_stalls=self.n_stalls + other.n_stalls,
                           starts=self.starts + other.starts, paired=self.paired and other.paired,
                           resampled_s=self.resampled_s + other.resampled_s, calls_per_sample=self.calls_per_sample,
                           notes=list(dict.fromkeys(self.notes + other.notes)),
                           stable_override=False if False in (self.stable_override, other.stable_override) else None,
                           clock_offset=self.clock_offset, judge_spread=self.judge_spread and other.judge_spread)

    def facts(self) -> dict[str, Any]:
        """What ``extra`` keeps of it: stalls, re-sampling time, the rounds and their medians."""
        return {"n_stalls": self.n_stalls, "resampled_s": self.resampled_s, "n_rounds": len(self.rounds),
                "round_medians_ms": self.round_medians,
                "round_starts_unix_s": [self.clock_offset + t for t in self.starts],
                "calls_per_sample": self.calls_per_sample}

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "n_stalls": self.n_stalls, "starts": self.starts, "paired": self.paired,
                "resampled_s": self.resampled_s, "calls_per_sample": self.calls_per_sample, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        return cls(**{k: d[k] for k in ("rounds", "n_stalls", "starts", "paired", "resampled_s",
                                         "calls_per_sample", "notes") if k in d})


@dataclass(frozen=True)
class Ratio:
    """A cell's time over its reference's from per-round paired ratios: median and ~95% interval."""
    value: float
    low: float
    high: float
    n_rounds: int

    @property
    def half_width(self) -> float:
        """Half the interval's width relative to the ratio."""
        return (self.high - self.low) / 2 / self.value if self.value else math.inf

    def columns(self, ref_model: str) -> dict[str, Any]:
        return {"ref_model": ref_model, "ratio_to_ref": self.value, "ratio_ci_low": self.low,
                "ratio_ci_high": self.high}


def round_values(m: Measurement) -> list[float | None]:
    """The median of each round (None for a round whose samples were all stalls), by round index."""
    return [statistics.median(r) if r else None for r in m.rounds]


def ratio_of(cell: Sequence[float | None], ref: Sequence[float | None]) -> Ratio | None:
    """Median and interval of the per-round ratios ``cell[i] / ref[i]`` over the rounds both have."""
    pairs = [a / b for a, b in zip(cell, ref) if a is not None and b is not None and b > 0]
    if not pairs:
        return None
    lo, hi = median_ci(pairs)
    return Ratio(statistics.median(pairs), lo, hi, len(pairs))


def paired_ratio(cell: Measurement, ref: Measurement) -> Ratio | None:
    """:func:`ratio_of` the two measurements' round medians (both from the same interleaved rounds)."""
    return ratio_of(round_values(cell), round_values(ref))


DRIFT_NEIGHBOURS = 6
MIN_CELLS_FOR_DRIFT = 12   # below it a round is short and the correction adds more noise than it removes


def drift_corrected(meas: Mapping[Hashable, Measurement],
                    neighbours: int = DRIFT_NEIGHBOURS) -> dict[Hashable, list[float | None]]:
    """Each cell's round medians divided by the machine's speed at the moment of its burst.

    In a round of many cells a cell's burst and its reference's lie seconds apart, long enough for
    the machine to change speed between them. The speed at a burst is estimated from the
    ``neighbours`` bursts of *other* cells nearest to it in time, each as its round median over
    its own cell's median (1 = that cell's usual speed), taking their median. The random order of
    every round makes the neighbours a random mix of cells, so the correction has no bias for any
    cell; it takes out the drift that the round's length lets through.
    """
    usual = {k: statistics.median([v for v in round_values(m) if v is not None] or [math.nan]) for k, m in meas.items()}
    bursts = sorted((t, k, i, v) for k, m in meas.items() for i, (t, v) in enumerate(zip(m.starts, round_values(m)))
                    if v is not None and usual[k] > 0)
    out: dict[Hashable, list[float | None]] = {k: [None] * len(m.rounds) for k, m in meas.items()}
    for j, (t, k, i, v) in enumerate(bursts):
        near: list[float] = []
        lo, hi = j - 1, j + 1
        while len(near) < neighbours and (lo >= 0 or hi < len(bursts)):
            take_lo = hi >= len(bursts) or (lo >= 0 and t - bursts[lo][0] <= bursts[hi][0] - t)
            other = bursts[lo] if take_lo else bursts[hi]
            lo, hi = (lo - 1, hi) if take_lo else (lo, hi + 1)
            if other[1] != k:
                near.append(other[3] / usual[other[1]])
        out[k][i] = v / statistics.median(near) if near else v
    return out
