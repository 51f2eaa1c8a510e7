"""What-if table: the same run with fees and slippage varied (seed 17), on the prepared events.

The variants are independent runs of one ``Prepared``, so a caller may run them anywhere: ``runs``
takes the prepared events and the variants' settings and returns their results in order (the
default runs them here, one after the other; the backtest flow submits each to its Prefect task
runner, a Dask cluster in production).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from backtest import metrics
from backtest.engine import BacktestResult, Prepared, run_prepared
from core.strategy import BacktestSettings

Runs = Callable[[Prepared, Sequence[BacktestSettings]], list[BacktestResult]]

FEE_SCALES = (0.0, 1.0, 2.0, 4.0)
SLIPPAGE_SCALES = (0.0, 1.0, 2.0)


def what_if(
    prep: Prepared,
    settings: BacktestSettings,
    fee_scales: tuple[float, ...] = FEE_SCALES,
    slippage_scales: tuple[float, ...] = SLIPPAGE_SCALES,
    runs: Runs | None = None,
) -> pl.DataFrame:
    """Rerun with fees x ``fee_scales`` and the slippage coefficient x ``slippage_scales``.

    One row per pair: fee_bps, slippage_k, total return, Sharpe, max drawdown, costs paid.
    """
    grid = [(fs, ss) for fs in fee_scales for ss in slippage_scales]
    configs = [
        settings.model_copy(
            update={
                "costs": settings.costs.model_copy(
                    update={"fee_bps": settings.costs.fee_bps * fs, "slippage_k": settings.costs.slippage_k * ss}
                )
            }
        )
        for fs, ss in grid
    ]
    results = (runs or run_in_order)(prep, configs)
    rows = []
    for (fs, ss), cfg, result in zip(grid, configs, results, strict=True):
        costs = cfg.costs
        daily = metrics.daily_series(result.equity, cfg.initial_cash)
        t = result.trades
        rows.append(
            {
                "fee_x": fs,
                "slippage_x": ss,
                "fee_bps": costs.fee_bps,
                "slippage_k": costs.slippage_k,
                "total_return": float(result.equity["nav"][-1]) / cfg.initial_cash - 1.0,
                "sharpe": metrics.sharpe(daily.ret),
                "max_drawdown": metrics.max_drawdown(daily.ret),
                "fees": float(t["fee"].sum()),
                "spread": float(t["spread_cost"].sum()),
                "slippage": float(t["slippage_cost"].sum()),
            }
        )
    return pl.DataFrame(rows)


def run_in_order(prep: Prepared, configs: Sequence[BacktestSettings]) -> list[BacktestResult]:
    """The default ``Runs``: each configuration in turn, in this process."""
    return [run_prepared(prep, cfg) for cfg in configs]
