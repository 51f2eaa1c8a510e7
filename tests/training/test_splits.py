"""Walk-forward and purged k-fold: chronology, gap, purging and embargo for overlapping labels."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, ContractError
from training.splits import WalkForwardConfig, purged_kfold, walk_forward

NS = 1_000_000_000


def _panel(n_days: int, per_day: int, horizon_s: int, rng: np.random.Generator):
    """Decision times inside trading days; labels end ``horizon_s`` later (may cross into the next day)."""
    day = np.repeat(np.arange(n_days), per_day)
    times = day * 86_400 * NS + np.sort(rng.integers(0, 86_400 * NS, size=(n_days, per_day)), axis=1).ravel()
    return times, times + horizon_s * NS, day


def _overlaps(train, test, times, label_end, embargo=0):
    """Brute force: any training label window overlapping a test label window (or its embargo)?"""
    t0, t1 = times[train][:, None], label_end[train][None, :].T
    for j in test:
        if np.any((t0 <= label_end[j] + embargo) & (t1 >= times[j])):
            return True
    return False


@settings(max_examples=40, deadline=None)
@given(
    n_days=st.integers(8, 20),
    per_day=st.integers(3, 12),
    horizon_s=st.sampled_from([1, 600, 86_400, 3 * 86_400]),
    scheme=st.sampled_from(["expanding", "rolling"]),
    gap=st.integers(0, 2),
    seed=st.integers(0, 10_000),
)
def test_walk_forward_never_trains_on_a_label_that_overlaps_the_test_block(
    n_days, per_day, horizon_s, scheme, gap, seed
):
    times, label_end, day = _panel(n_days, per_day, horizon_s, np.random.default_rng(seed))
    cfg = WalkForwardConfig(n_folds=3, scheme=scheme, train_units=3, gap=gap, min_train_units=2)
    folds = walk_forward(times, label_end, cfg, groups=day)
    assert len(folds) == 3
    for f in folds:
        assert len(f.test)
        assert not _overlaps(f.train, f.test, times, label_end)
        if len(f.train):
            assert label_end[f.train].max() < times[f.test].min()  # strictly chronological
            assert day[f.train].max() < day[f.test].min() - gap  # the gap days are unused
            if scheme == "rolling":
                assert len(np.unique(day[f.train])) <= 3
    tests = np.concatenate([f.test for f in folds])
    assert len(np.unique(tests)) == len(tests)  # test blocks do not overlap


def test_purging_drops_exactly_the_overlapping_labels():
    times = np.arange(20) * NS
    label_end = times + 3 * NS  # each label looks 3 s ahead
    (fold,) = walk_forward(times, label_end, WalkForwardConfig(n_folds=1, test_units=5))
    assert fold.test.tolist() == [15, 16, 17, 18, 19]
    assert fold.train.tolist() == list(range(12))  # 12, 13, 14 end at 15..17: inside the test block


def test_expanding_grows_and_rolling_slides():
    times = np.arange(100) * NS
    exp = walk_forward(times, times, WalkForwardConfig(n_folds=4, test_units=10))
    roll = walk_forward(times, times, WalkForwardConfig(n_folds=4, test_units=10, scheme="rolling", train_units=30))
    assert [len(f.train) for f in exp] == [60, 70, 80, 90]
    assert [len(f.train) for f in roll] == [30] * 4
    assert [f.train.min() for f in roll] == [30, 40, 50, 60]


@settings(max_examples=30, deadline=None)
@given(n_splits=st.integers(2, 6), embargo_s=st.sampled_from([0, 5, 50]), seed=st.integers(0, 1000))
def test_purged_kfold_respects_overlap_and_embargo(n_splits, embargo_s, seed):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.integers(0, 1000, size=60)) * NS
    label_end = times + rng.integers(0, 30, size=60) * NS
    for f in purged_kfold(times, label_end, n_splits, embargo_ns=embargo_s * NS):
        assert not _overlaps(f.train, f.test, times, label_end, embargo_s * NS)
        assert len(np.intersect1d(f.train, f.test)) == 0


def test_bad_input_is_named():
    times = np.arange(10) * NS
    with pytest.raises(ContractError, match="sample 3"):
        walk_forward(times, np.where(np.arange(10) == 3, -1, times), WalkForwardConfig(n_folds=2))
    with pytest.raises(ConfigError, match="cannot hold"):
        walk_forward(times, times, WalkForwardConfig(n_folds=5, test_units=3))
    with pytest.raises(ConfigError, match="rolling"):
        WalkForwardConfig(scheme="rolling")
    with pytest.raises(ContractError, match="starts before"):
        walk_forward(times, times, WalkForwardConfig(n_folds=2), groups=np.array([0, 1] * 5))
