"""Chronological train/test folds for overlapping labels: walk-forward with gap, purging and embargo.

A sample is decided at ``times[i]`` and its label is realised over ``[times[i], label_end[i]]`` (the
decision time plus the longest horizon). Following López de Prado (Advances in Financial Machine
Learning, ch. 7):

- purging drops every training sample whose label window overlaps the window of any test sample,
  so no training label is computed from prices inside the test period;
- the embargo also drops training samples that start within ``embargo_ns`` after a test block
  ends (serial correlation leaks backwards from test into later training data; it matters for
  ``purged_kfold``, where training data may follow the test block);
- the gap leaves ``gap`` whole units (days or samples) unused between training and test.

Folds are built from *units*: ``groups`` (e.g. a day number per sample, increasing with time) when
given, otherwise the samples themselves in time order. Test blocks are whole units, so a walk-forward
"by day" is ``groups=day``. Walk-forward keeps every test block after all of its training data;
``expanding`` grows the training window from the start, ``rolling`` keeps the last ``train_units``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import ConfigError, ContractError


@dataclass(frozen=True)
class Fold:
    """Positions (into the caller's arrays) of one fold's training and test samples."""

    index: int
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class WalkForwardConfig:
    """Walk-forward layout in units (days when ``groups`` are days, else samples)."""

    n_folds: int = 5
    scheme: Literal["expanding", "rolling"] = "expanding"
    test_units: int | None = None  # size of each test block; default: the units after min_train, split evenly
    min_train_units: int = 1  # the first fold trains on at least this many units
    train_units: int | None = None  # rolling window length (required for "rolling")
    gap: int = 0  # whole units left out between the end of training and the test block
    embargo_ns: int = 0  # training samples starting within this long after a test block are dropped

    def __post_init__(self) -> None:
        if self.n_folds < 1 or self.min_train_units < 1 or self.gap < 0 or self.embargo_ns < 0:
            raise ConfigError("walk-forward: n_folds and min_train_units >= 1, gap and embargo_ns >= 0")
        if self.scheme == "rolling" and (self.train_units is None or self.train_units < 1):
            raise ConfigError("walk-forward: scheme 'rolling' needs train_units >= 1")
        if self.scheme not in ("expanding", "rolling"):
            raise ConfigError(f"walk-forward: scheme must be 'expanding' or 'rolling', got {self.scheme!r}")


def _check(times: np.ndarray, label_end: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, ...]:
    times = np.asarray(times, dtype=np.int64)
    label_end = np.asarray(label_end, dtype=np.int64)
    if times.ndim != 1 or times.shape != label_end.shape:
        raise ContractError(f"times {times.shape} and label_end {label_end.shape} must be equal 1-D arrays")
    if np.any(label_end < times):
        i = int(np.argmax(label_end < times))
        raise ContractError(f"sample {i}: label_end {label_end[i]} precedes its decision time {times[i]}")
    if groups is None:
        units = np.empty(len(times), dtype=np.int64)
        units[np.argsort(times, kind="stable")] = np.arange(len(times))
    else:
        units = np.asarray(groups)
        if units.shape != times.shape:
            raise ContractError(f"groups {units.shape} must match times {times.shape}")
        names, units = np.unique(units, return_inverse=True)
        lo = np.full(len(names), np.iinfo(np.int64).max)
        hi = np.full(len(names), np.iinfo(np.int64).min)
        np.minimum.at(lo, units, times)
        np.maximum.at(hi, units, times)
        bad = np.flatnonzero(lo[1:] < hi[:-1])
        if len(bad):
            raise ContractError(f"group {names[bad[0] + 1]!r} starts before group {names[bad[0]]!r} ends")
    return times, label_end, units.astype(np.int64)


def purge(
    train: np.ndarray, test: np.ndarray, times: np.ndarray, label_end: np.ndarray, embargo_ns: int = 0
) -> np.ndarray:
    """Drop from ``train`` every sample whose label window overlaps a test label window or its embargo.

    Test samples are taken as contiguous blocks in time (one block per run of consecutive units),
    so overlap is checked against each block's span [first decision, last label end + embargo].
    """
    if len(test) == 0 or len(train) == 0:
        return train
    t0, t1 = times[train], label_end[train]
    keep = np.ones(len(train), dtype=bool)
    order = test[np.argsort(times[test], kind="stable")]
    # one span per test block: split where the next test sample starts after the running label end
    starts, ends = times[order], np.maximum.accumulate(label_end[order])
    breaks = np.flatnonzero(starts[1:] > ends[:-1]) + 1
    for seg in np.split(np.arange(len(order)), breaks):
        lo, hi = starts[seg[0]], ends[seg[-1]]
        keep &= ~((t0 <= hi + embargo_ns) & (t1 >= lo))  # overlap of [t0, t1] with [lo, hi + embargo]
    return train[keep]


def walk_forward(
    times: np.ndarray, label_end: np.ndarray, cfg: WalkForwardConfig, groups: np.ndarray | None = None
) -> list[Fold]:
    """Split samples into chronological, purged walk-forward folds (test always after training)."""
    times, label_end, units = _check(times, label_end, groups)
    n_units = int(units.max()) + 1 if len(units) else 0
    test_units = cfg.test_units or (n_units - cfg.min_train_units - cfg.gap) // cfg.n_folds
    first_test = n_units - cfg.n_folds * test_units
    if test_units < 1 or first_test - cfg.gap < cfg.min_train_units:
        raise ConfigError(
            f"walk-forward: {n_units} units cannot hold {cfg.n_folds} test blocks of {test_units} "
            f"after min_train_units={cfg.min_train_units} and gap={cfg.gap}"
        )
    folds = []
    for f in range(cfg.n_folds):
        lo = first_test + f * test_units
        hi = lo + test_units
        train_hi = lo - cfg.gap
        train_lo = 0 if cfg.scheme == "expanding" else max(0, train_hi - (cfg.train_units or 0))
        test = np.flatnonzero((units >= lo) & (units < hi))
        train = np.flatnonzero((units >= train_lo) & (units < train_hi))
        train = purge(train, test, times, label_end, cfg.embargo_ns)
        train = train[times[train] < times[test].min()] if len(test) else train
        folds.append(Fold(f, train, test))
    return folds


def purged_kfold(
    times: np.ndarray, label_end: np.ndarray, n_splits: int, embargo_ns: int = 0, groups: np.ndarray | None = None
) -> list[Fold]:
    """Purged k-fold CV with embargo (training on both sides of each test block; for tuning, not evaluation)."""
    if n_splits < 2:
        raise ConfigError("purged_kfold: n_splits must be >= 2")
    times, label_end, units = _check(times, label_end, groups)
    n_units = int(units.max()) + 1
    if n_units < n_splits:
        raise ConfigError(f"purged_kfold: {n_units} units < n_splits={n_splits}")
    bounds = np.linspace(0, n_units, n_splits + 1).astype(int)
    folds = []
    for f in range(n_splits):
        in_test = (units >= bounds[f]) & (units < bounds[f + 1])
        test, train = np.flatnonzero(in_test), np.flatnonzero(~in_test)
        folds.append(Fold(f, purge(train, test, times, label_end, embargo_ns), test))
    return folds
