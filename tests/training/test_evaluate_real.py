"""Real-data evaluation entry points on tiny real slices: BAC ticks through ingest -> gold -> windows -> tables,
daily bars through features -> labels -> windows -> tables and the M6 measure."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lakehouse.storage import Lake
from training.models.base import Buckets, default_edges_bps
from training.real_data import bar_buckets, bar_windows, daily_bars, tick_windows
from training.real_eval import gains_table, m6_scores, m6_table, model_factories, run_eval, scores_table, targets_table


def test_bac_ticks_walk_forward_tables(shared_data, tmp_path):
    horizons = (1, 60)
    w = tick_windows(
        Lake(str(tmp_path / "lake")), Path(shared_data), ("20131007", "20131008"), horizons, 8, 20, ("14:00", "15:00")
    )
    assert w.X.shape[1:] == (8, 28) and len(np.unique(w.day)) == 2 and np.all(np.diff(w.times) >= 0)
    buckets = Buckets(default_edges_bps(101, -50, 50))
    inside = np.abs(w.r_bps) < 49.5  # unclipped labels sit in the bucket of their realised return
    assert np.array_equal(w.y[inside], np.searchsorted(buckets.edges_bps, w.r_bps[inside], side="right") - 1)
    models, base = model_factories("tick", buckets, w.names, horizons, 0, include=())
    res = run_eval(w, buckets, models, base, n_folds=1, min_train_days=1, n_boot=50)
    table = scores_table(res)
    assert table.count("| climatology |") == 2 and table.count("| ewma_t |") == 2
    gains = gains_table(res)
    assert "gain vs climatology" in gains and "| 60 | ewma_t |" in gains
    assert "| climatology | (is climatology) |" in targets_table(res)
    pooled = res.scores.filter((pl.col("fold") == "all") & (pl.col("metric") == "log_score"))["value"]
    assert pooled.is_finite().all() and (pooled > 0).all()


def test_daily_bars_with_m6(shared_data):
    raw, actions = daily_bars(Path(shared_data), since=date(2016, 1, 1))
    assert {"SPX:US", "COMP:US", "AAPL:US"} <= set(raw["symbol_id"].unique().to_list())
    raw = raw.filter(pl.col("ts") < pl.datetime(2017, 7, 1, time_zone="UTC"))
    buckets = bar_buckets()
    w = bar_windows(raw, actions, (1, 5, 20), 5, 1, buckets)
    assert len(set(w.symbols.tolist())) >= 12
    models, base = model_factories("bar", buckets, w.names, w.horizons, 0, include=())
    assert set(base) == {"climatology", "ewma_t", "garch_t"}
    res = run_eval(w, buckets, models, base, n_folds=1, min_train_days=200, n_boot=50)
    m6 = m6_scores(res, w, buckets, draws=50, min_assets=10)
    assert m6["uniform"][0] == pytest.approx(0.16) and m6["climatology"][1] > 50
    assert 0.12 < m6["climatology"][0] < 0.2  # no cross-sectional view: about the uniform score
    assert "| uniform | 0.16000 |" in m6_table(m6)
