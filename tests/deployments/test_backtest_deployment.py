"""The backtest deployment, started as the Prefect UI's Run button does (no parameters), runs on a real
server and serve process to Completed: it trades the strategy model's signals in gold over silver bars,
writes gold.backtest_runs and records oos_sharpe and abort_dd_intraday in gold.monitoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import polars as pl

from backtest.results import BACKTEST_RUNS
from core.strategy import load_strategy
from lakehouse.monitoring import GOLD_MONITORING
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS, SILVER_BARS
from tests.deployments.test_webhook_to_flow_run import _wait_run

OPENS = [datetime(2026, 1, d, 14, 30, tzinfo=UTC) for d in (5, 6, 7)]  # three sessions: a daily Sharpe ratio
SECONDS = 600


def _bars(symbol: str, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = SECONDS * len(OPENS)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    ts = [o + timedelta(seconds=i + 1) for o in OPENS for i in range(SECONDS)]
    quality = {"stale": False, "outlier_frac": 0.0, "n_src": 3, "lat_ms": 5.0, "sources": ["a"], "outliers": []}
    return pl.DataFrame(
        {
            "symbol_id": symbol,
            "tf": "1s",
            "ts": ts,
            "adjustment": "adjusted",
            "open": np.r_[100.0, close[:-1]],
            "high": np.maximum(np.r_[100.0, close[:-1]], close) + 0.01,
            "low": np.minimum(np.r_[100.0, close[:-1]], close) - 0.01,
            "close": close,
            "volume": 1000.0,
            "vwap": close,
            "n_trades": 5,
            "quality": [quality] * n,
            "known_at": ts,
        }
    )


def _signals(symbol: str, model: str) -> pl.DataFrame:
    ts = [o + timedelta(seconds=s) for o in OPENS for s in range(30, SECONDS, 30)]
    n = len(ts)
    size = [0.01 if i % 2 else -0.01 for i in range(n)]
    return pl.DataFrame(
        {
            "ts": ts,
            "symbol_id": symbol,
            "tf": "1s",
            "model": model,
            "model_version": "1",
            "horizon": 60,
            "prob_up": 0.5,
            "expected_return": 0.0,
            "q05": -1.0,
            "q50": 0.0,
            "q95": 1.0,
            "band_lo": -1.0,
            "band_hi": 1.0,
            "conf": 0.5,
            "kelly": 0.0,
            "size": size,
            "guard": None,
            "seq": list(range(n)),
            "published_at": ts,
            "payload": "{}",
            "date": [t.date().isoformat() for t in ts],
        },
        schema_overrides={"guard": pl.String},
    )


def _logs(api_url: str, run_id: str) -> str:
    body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
    return "\n".join(r["message"] for r in httpx.post(f"{api_url}/logs/filter", json=body, timeout=30).json())


def test_the_backtest_deployment_runs_from_the_run_button_to_completed(live_stack):
    server, lake_root, _, _ = live_stack
    strategy = load_strategy()
    model = strategy.models[0].name
    lake = Lake(lake_root)
    for i, symbol in enumerate(strategy.universe.symbols):
        lake.append(SILVER_BARS, _bars(symbol, i))
        lake.append(GOLD_SIGNALS, _signals(symbol, model))
    dep = httpx.get(f"{server.api_url}/deployments/name/backtest/default", timeout=30).json()
    created = httpx.post(f"{server.api_url}/deployments/{dep['id']}/create_flow_run", json={}, timeout=30)
    assert created.status_code == 201, created.text
    runs = _wait_run(server.api_url, dep["id"], 1, timeout=400)
    run = next(r for r in runs if r["id"] == created.json()["id"])
    assert run["state"]["type"] == "COMPLETED", (run["state"], _logs(server.api_url, run["id"]))
    assert run["parameters"]["model"] == model  # the deployment's defaults, nothing from the caller
    (row,) = lake.read(BACKTEST_RUNS).iter_rows(named=True)
    monitored = lake.read(GOLD_MONITORING)
    assert set(monitored["metric"]) == {"oos_sharpe", "abort_dd_intraday"}
    assert set(monitored["run_id"]) == {row["run_id"]} and set(monitored["model"]) == {model}
