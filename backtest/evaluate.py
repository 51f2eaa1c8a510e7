"""One backtest evaluation: run, daily series, metrics with CIs, deflated Sharpe, what-if table.

Beside the daily metrics, an intraday run gets ``sharpe_per_minute``: the Sharpe of its per-minute NAV
returns with a circular block-bootstrap CI (the promotion gate's evidence). With a few sessions the
session bootstrap of daily returns is a range, not an interval (two sessions read [26.4, 26.4]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest import metrics as m
from backtest.bootstrap import block_bootstrap_sharpe, bootstrap_metrics, deflated_sharpe, period_returns
from backtest.engine import BacktestResult, Prepared, run_prepared
from backtest.whatif import Runs, what_if
from core.strategy import BacktestSettings


@dataclass(frozen=True)
class Evaluation:
    result: BacktestResult
    daily: m.Daily
    metrics: pl.DataFrame  # metric, value, lo, hi, level, cluster, draws, n_clusters
    what_if: pl.DataFrame | None


def evaluate(
    prep: Prepared,
    settings: BacktestSettings,
    *,
    trial_sharpes: np.ndarray | None = None,
    with_what_if: bool = True,
    runs: Runs | None = None,
) -> Evaluation:
    """Run ``prep`` with ``settings``; add bootstrap CIs and, when several configurations were tried
    (``trial_sharpes``: their per-period Sharpe ratios), the deflated Sharpe ratio. ``runs`` runs the
    what-if variants (``backtest.whatif``; default: in order, here)."""
    result = run_prepared(prep, settings)
    daily = m.daily_series(result.equity, settings.initial_cash)
    table = bootstrap_metrics(
        daily,
        draws=settings.bootstrap_draws,
        cluster=settings.bootstrap_cluster,
        level=settings.ci_level,
        seed=settings.bootstrap_seed,
    )
    if trial_sharpes is not None and len(trial_sharpes) > 1 and len(daily.ret) >= 3:
        dsr = deflated_sharpe(daily.ret, trial_sharpes)
        table = pl.concat(
            [
                table,
                pl.DataFrame(
                    {
                        "metric": ["deflated_sharpe"],
                        "value": [dsr["dsr"]],
                        "lo": [math.nan],
                        "hi": [math.nan],
                        "level": [settings.ci_level],
                        "cluster": ["-"],
                        "draws": [int(dsr["n_trials"])],
                        "n_clusters": [0],
                    }
                ),
            ],
            how="vertical_relaxed",
        )
    per_minute = _per_minute(result.equity, settings)
    if per_minute.height:
        table = pl.concat([table, per_minute], how="vertical_relaxed")
    table_what_if = what_if(prep, settings, runs=runs) if with_what_if else None
    return Evaluation(result=result, daily=daily, metrics=table, what_if=table_what_if)


def _per_minute(equity: pl.DataFrame, settings: BacktestSettings) -> pl.DataFrame:
    """The ``sharpe_per_minute`` row of an intraday run (none for daily bars: a bar is its own period)."""
    ret, per_session = period_returns(equity) if equity.height else (np.empty(0), 1.0)
    if per_session <= 1.0:
        return pl.DataFrame()
    sharpe, lo, hi, _, block = block_bootstrap_sharpe(
        ret, m.ANNUALIZATION * per_session, settings.bootstrap_draws, settings.ci_level, settings.bootstrap_seed
    )
    return pl.DataFrame(
        {
            "metric": ["sharpe_per_minute"],
            "value": [sharpe],
            "lo": [lo],
            "hi": [hi],
            "level": [settings.ci_level],
            "cluster": [f"{block}-minute blocks"],
            "draws": [settings.bootstrap_draws],
            "n_clusters": [len(ret)],
        }
    )
