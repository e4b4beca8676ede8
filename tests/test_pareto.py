"""Pareto-front properties: dominance, ties, missing values, several objectives, senses."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from reports.pareto import pareto_front, pareto_mask

OBJ = {"top1": "max", "lat": "min"}


def _dominates(a, b, objectives) -> bool:
    better = worse = False
    for col, sense in objectives.items():
        x, y = (a[col], b[col]) if sense == "min" else (-a[col], -b[col])
        better |= x < y
        worse |= x > y
    return better and not worse


def test_simple_front():
    df = pd.DataFrame({"top1": [70, 75, 72, 80, 60], "lat": [1.0, 2.0, 3.0, 4.0, 0.5]}, index=list("abcde"))
    mask = pareto_mask(df, OBJ)
    assert mask.to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": True}
    assert list(pareto_front(df, OBJ, sort_by="lat").index) == ["e", "a", "b", "d"]


def test_ties_both_on_front_and_weak_domination():
    df = pd.DataFrame({"top1": [75, 75, 75, 70], "lat": [2.0, 2.0, 3.0, 2.0]})
    # rows 0 and 1 tie exactly: both optimal; row 2 equal top1 but slower; row 3 equal lat but worse
    assert pareto_mask(df, OBJ).tolist() == [True, True, False, False]


def test_missing_values_never_on_front_and_never_dominate():
    df = pd.DataFrame({"top1": [90, np.nan, 70, 65], "lat": [None, 0.1, 1.0, 2.0]})
    assert pareto_mask(df, OBJ).tolist() == [False, False, True, False]
    all_nan = pd.DataFrame({"top1": [np.nan], "lat": [1.0]})
    assert pareto_mask(all_nan, OBJ).tolist() == [False]
    assert pareto_mask(df.iloc[:0], OBJ).tolist() == []


def test_senses_flip_the_front():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [3, 2, 1]})
    assert pareto_mask(df, {"a": "min", "b": "min"}).all()
    assert pareto_mask(df, {"a": "min", "b": "max"}).tolist() == [True, False, False]
    assert pareto_mask(df, {"a": "max"}).tolist() == [False, False, True]


@pytest.mark.parametrize("seed", range(5))
def test_matches_bruteforce_three_objectives(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.integers(0, 5, size=(40, 3)).astype(float), columns=["top1", "lat", "mem"])
    df.loc[rng.integers(0, 40, 4), "mem"] = np.nan
    obj = {"top1": "max", "lat": "min", "mem": "min"}
    mask = pareto_mask(df, obj)
    rows = df.to_dict("records")
    for i, a in enumerate(rows):
        if any(np.isnan(v) for v in a.values()):
            assert not mask.iloc[i]
            continue
        dominated = any(_dominates(b, a, obj) for b in rows if not any(np.isnan(v) for v in b.values()))
        assert mask.iloc[i] == (not dominated)
    front = df[mask]
    # the front is mutually non-dominated, and every valid point off it is dominated by a front point
    for a, b in itertools.permutations(front.to_dict("records"), 2):
        assert not _dominates(a, b, obj)
    for _, a in df[~mask].dropna().iterrows():
        assert any(_dominates(b, a, obj) for b in front.to_dict("records"))


def test_bad_arguments_are_clear():
    df = pd.DataFrame({"top1": [1.0]})
    with pytest.raises(ValueError, match="sense"):
        pareto_mask(df, {"top1": "up"})
    with pytest.raises(KeyError, match="latency"):
        pareto_mask(df, {"latency": "min"})
    with pytest.raises(ValueError, match="at least one"):
        pareto_mask(df, {})


def test_overlapping_intervals_are_not_ordered():
    iv = {"lat": ("lo", "hi")}
    df = pd.DataFrame({"top1": [75.0, 75.0], "lat": [9.30, 9.34], "lo": [9.25, 9.29], "hi": [9.36, 9.40]})
    assert pareto_mask(df, OBJ).tolist() == [True, False]          # point values: 9.30 beats 9.34
    assert pareto_mask(df, OBJ, iv).tolist() == [True, True]       # the CIs overlap: not ordered
    # separated intervals order them again; a missing bound falls back to the value
    sep = df.assign(lo=[9.20, 9.35], hi=[9.31, np.nan])
    assert pareto_mask(sep, OBJ, iv).tolist() == [True, False]
    # a more accurate point whose CI overlaps does not dominate; a less accurate one never does
    mixed = pd.DataFrame({"top1": [76.0, 75.0, 74.0], "lat": [9.34, 9.30, 12.0], "lo": [9.29, 9.25, 11.9],
                          "hi": [9.40, 9.36, 12.1]})
    assert pareto_mask(mixed, OBJ, iv).tolist() == [True, True, False]


@pytest.mark.parametrize("seed", range(3))
def test_intervals_of_zero_width_match_the_plain_front(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.integers(0, 6, size=(30, 2)).astype(float), columns=["top1", "lat"])
    df["lo"] = df["hi"] = df["lat"]
    assert pareto_mask(df, OBJ, {"lat": ("lo", "hi")}).tolist() == pareto_mask(df, OBJ).tolist()
