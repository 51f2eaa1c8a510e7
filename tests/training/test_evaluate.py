"""Walk-forward evaluation produces tidy scores, CIs against baselines, coverage and a report with figures."""

import numpy as np
import polars as pl
import pytest

from training.evaluate import EvalConfig, EvalData, evaluate
from training.models.base import Buckets, default_edges_bps
from training.models.climatology import Climatology
from training.models.ewma_t import EwmaT
from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig
from training.report import write_report
from training.splits import WalkForwardConfig
from training.synthetic import SyntheticConfig, oracle_proba, simulate

BUCKETS = Buckets(default_edges_bps(41, -20, 20))


@pytest.fixture(scope="module")
def result():
    d = simulate(SyntheticConfig(n_steps=4000, horizons=(1, 4), steps_per_day=250), BUCKETS)
    data = EvalData(
        X=d.X, y=d.y, times=d.times, label_end=d.times + 4, day=d.day, buckets=BUCKETS, r_bps=d.r_bps,
        horizons=(1, 4), oracle=oracle_proba(d, BUCKETS, n_paths=400),
    )  # fmt: skip
    cfg = EvalConfig(folds=WalkForwardConfig(n_folds=3, min_train_units=6, gap=0), n_boot=300)
    models = {"lightgbm": lambda: LightGBMBuckets(BUCKETS, LightGBMConfig(n_estimators=40, learning_rate=0.1))}
    baselines = {"climatology": lambda: Climatology(BUCKETS), "ewma_t": lambda: EwmaT(BUCKETS)}
    return data, evaluate(data, models, baselines, cfg)


def test_scores_are_tidy_per_fold_and_pooled(result):
    _, res = result
    assert set(res.scores["model"].unique()) == {"lightgbm", "climatology", "ewma_t"}
    assert set(res.scores["fold"].unique()) == {"0", "1", "2", "all"}
    assert res.scores.filter(pl.col("metric") == "log_score").height == 3 * 4 * 2
    assert res.predictions["lightgbm"].shape == (len(res.test_index), 2, BUCKETS.k)


def test_learned_model_beats_climatology_with_ci_above_zero(result):
    _, res = result
    d = res.diffs.filter((pl.col("model") == "lightgbm") & (pl.col("baseline") == "climatology"))
    for row in d.filter(pl.col("metric") == "log_score").iter_rows(named=True):
        assert row["lo"] > 0, row
    # a baseline is also compared with the other baseline, never with itself
    assert res.diffs.filter(pl.col("model") == pl.col("baseline")).height == 0


def test_skill_share_and_conformal_coverage(result):
    _, res = result
    s = res.skill.filter(pl.col("model") == "lightgbm")
    assert s.height == 2 and all(0 < v < 1.05 for v in s["skill_share"])
    assert res.skill.filter(pl.col("model") == "climatology")["skill_share"].to_list() == [0.0, 0.0]
    cov = res.coverage.filter(pl.col("model") == "ewma_t")
    assert cov.height == 2 * 2  # folds 1 and 2 (fold 0 has no earlier fold to calibrate on), two horizons
    per_h = cov.group_by("horizon").agg(pl.col("coverage").mean())["coverage"].to_numpy()
    assert np.all(np.abs(per_h - 0.9) < 0.05)  # single folds swing with the vol regime


def test_report_writes_markdown_and_figures(result, tmp_path):
    data, res = result
    md = write_report(res, data.y, BUCKETS, tmp_path, "synthetic")
    text = md.read_text()
    assert "Log-score gain over baselines" in text and "oracle" in text
    for name in ("reliability.png", "score_by_horizon.png", "pit.png"):
        assert (tmp_path / name).stat().st_size > 5000
        assert f"({name})" in text
