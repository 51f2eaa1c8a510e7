"""The promotion's Sharpe gate on backtested forecasts: no edge is refused and says why, a real edge passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from backtest.bootstrap import MIN_PERIODS, block_bootstrap_sharpe
from backtest.engine import run_backtest
from backtest.events import held_sizes
from backtest.forecast_sharpe import forecast_sharpe
from backtest.sizing import SizingConfig
from backtest.targets import hold_steps
from core.errors import ConfigError
from core.strategy import BacktestSettings, Promotion
from training.gates import FAIL, PASS, SharpeEvidence, evaluate_gates, sharpe_gate

EDGES = np.linspace(-505.0, 505.0, 102)  # 101 buckets of 10 bps, mids -500..500
MIDS = 0.5 * (EDGES[1:] + EDGES[:-1])
SYMBOLS = ("AAA:US", "BBB:US")
N_DAYS = 120


def _market(seed: int = 3) -> tuple[pl.DataFrame, np.ndarray]:
    """Daily bars of two random walks (no gaps: each open is the previous close); returns (bars, r[day, sym])."""
    rng = np.random.default_rng(seed)
    r = rng.standard_t(5, size=(N_DAYS, len(SYMBOLS))) * 0.01 / np.sqrt(5 / 3)
    rows = []
    t0 = datetime(2024, 1, 2, 21, tzinfo=UTC)
    for j, sym in enumerate(SYMBOLS):
        close = 100.0 * np.exp(np.cumsum(r[:, j]))
        open_ = np.r_[100.0, close[:-1]]
        for d in range(N_DAYS):
            hi, lo = max(open_[d], close[d]) * 1.001, min(open_[d], close[d]) * 0.999
            rows.append((sym, t0 + timedelta(days=d), open_[d], hi, lo, close[d], 5e8))
    cols = ["symbol_id", "ts", "open", "high", "low", "close", "volume"]
    bars = pl.DataFrame(rows, schema=cols, orient="row").with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    return bars.sort("ts", "symbol_id"), r


def _forecasts(bars: pl.DataFrame, mean_bps: np.ndarray) -> tuple[np.ndarray, np.ndarray, pl.Series]:
    """Normal bucket forecasts (sd 100 bps) with ``mean_bps[day, sym]``, issued at each bar's close."""
    keys = bars.select("symbol_id", "ts")
    day = ((keys["ts"] - keys["ts"].min()).dt.total_days()).to_numpy()
    sym = np.array([SYMBOLS.index(s) for s in keys["symbol_id"]])
    mu = mean_bps[day, sym][:, None]
    p = np.exp(-0.5 * ((MIDS[None, :] - mu) / 100.0) ** 2)
    return p / p.sum(axis=1, keepdims=True), keys["symbol_id"].to_numpy(), keys["ts"]


@pytest.fixture(scope="module")
def settings() -> BacktestSettings:
    return BacktestSettings(calendar=None, bootstrap_draws=400)


@pytest.fixture(scope="module")
def sizing() -> SizingConfig:
    return SizingConfig.load()


def test_no_edge_fails_the_sharpe_gate_and_says_why(settings, sizing):
    bars, _ = _market()
    rng = np.random.default_rng(0)
    noise = rng.choice([-40.0, 40.0], size=(N_DAYS, len(SYMBOLS)))  # confident, but unrelated to what follows
    probs, syms, ts = _forecasts(bars, noise)
    fs = forecast_sharpe(probs, syms, ts, bars, EDGES, sizing, settings)
    assert fs.sessions >= N_DAYS - 2 and fs.trades > 50 and fs.mean_abs_size > 0
    assert fs.lower <= 0.0 < fs.upper or fs.upper <= 0.0  # no edge: the CI does not lie above 0
    evidence = SharpeEvidence(fs.sharpe, fs.lower, fs.upper, fs.sigma, fs.sessions, "random views")
    y = np.full((4, 1), 50)
    d = evaluate_gates(np.full((4, 1, 101), 1 / 101), y, np.arange(4), EDGES, Promotion(), sharpe=evidence)
    gate = {g.name: g for g in d.gates}["sharpe"]
    assert gate.status == FAIL and not d.passed
    reason = next(r for r in d.reasons if r.startswith("sharpe:"))
    assert f"over {fs.sessions} sessions" in reason and "not above min 0.0" in reason


def test_a_real_edge_passes_the_sharpe_gate(settings, sizing):
    bars, r = _market()
    ahead = np.vstack([r[1:], np.zeros((1, len(SYMBOLS)))]) * 1e4  # the next session's return, in bps
    probs, syms, ts = _forecasts(bars, np.clip(ahead, -60, 60))
    fs = forecast_sharpe(probs, syms, ts, bars, EDGES, sizing, settings)
    gate = sharpe_gate(SharpeEvidence(fs.sharpe, fs.lower, fs.upper, fs.sigma, fs.sessions), 0.0)
    assert fs.sharpe > 2.0 and gate.status == PASS, gate.detail


def test_an_undefined_ci_fails():
    gate = sharpe_gate(SharpeEvidence(1.0, float("nan"), float("nan"), float("nan"), 1), 0.0)
    assert gate.status == FAIL and "CI undefined" in gate.detail
    assert sharpe_gate(None, 0.0, "no silver 1s bars").detail == "no silver 1s bars"


def test_held_sizes_average_each_symbols_last_signals():
    t0 = datetime(2024, 1, 2, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "symbol_id": ["A", "B", "A", "B", "A", "A"],
            "ts": [t0 + timedelta(seconds=s) for s in (0, 0, 1, 1, 2, 3)],
            "size": [0.04, -0.02, 0.0, -0.02, 0.02, -0.04],
        }
    )
    held = held_sizes(frame, 3).sort("symbol_id", "ts")
    assert held["size"].to_list() == pytest.approx([0.04, 0.02, 0.02, -0.02 / 3, -0.02, -0.02])
    assert held_sizes(frame, 1) is frame
    with pytest.raises(ConfigError, match="at least 1"):
        held_sizes(frame, 0)


def test_holding_overlapping_forecasts_trades_less_for_the_same_views(settings):
    """A 5-session view issued every session is one of five overlapping positions: held for 5, the
    book moves by a fifth of each change of view instead of flipping with it."""
    bars, _ = _market()
    rng = np.random.default_rng(1)
    views = pl.DataFrame(
        {"symbol_id": bars["symbol_id"], "ts": bars["ts"], "size": rng.choice([-0.05, 0.05], size=bars.height)}
    )
    flip = run_backtest(bars, views, settings)
    held = run_backtest(bars, views, settings, hold=5)
    assert held.equity["traded"].sum() < 0.6 * flip.equity["traded"].sum()
    assert held.run_id != flip.run_id  # the hold is part of what determines a run
    assert hold_steps((1, 5, 20), "bars", "1d", 5) == 5 and hold_steps((1, 5), "bars", "1d", 60) == 1
    assert hold_steps((1, 60, 300), "s", "1s", 60) == 60 and hold_steps((60,), "s", "1m", 60) == 1


def test_sharpe_ci_rests_on_period_returns_not_on_two_daily_ones():
    """Two sessions of minute returns give a real interval; a handful of periods gives none."""
    rng = np.random.default_rng(2)
    ret = rng.normal(2e-5, 1e-4, 80)  # two 40-minute sessions of minute returns
    sharpe, lo, hi, sd, block = block_bootstrap_sharpe(ret, 252 * 40, 1000, 0.95, 7)
    assert lo < sharpe < hi and sd > 0 and block == 5
    assert hi - lo > 0.5 * sharpe  # 80 noisy minutes: a wide interval, not a point
    _, lo, hi, _, _ = block_bootstrap_sharpe(ret[: MIN_PERIODS - 1], 252 * 40, 1000, 0.95, 7)
    assert np.isnan(lo) and np.isnan(hi)
    _, lo, _, _, _ = block_bootstrap_sharpe(np.zeros(50), 252, 200, 0.95, 7)
    assert np.isnan(lo)  # nothing varies: no Sharpe, no CI


def test_runs_of_different_forecasts_never_share_an_id(settings, sizing):
    """The run id hashed settings and the model version only: a refused v1 that traded nothing and
    a promoted v1 of another demo run read the same id."""
    bars, r = _market()
    ahead = np.vstack([r[1:], np.zeros((1, len(SYMBOLS)))]) * 1e4
    one = forecast_sharpe(
        *_forecasts(bars, np.clip(ahead, -60, 60)), bars, EDGES, sizing, settings, model_version="m:1"
    )
    two = forecast_sharpe(*_forecasts(bars, np.zeros_like(ahead)), bars, EDGES, sizing, settings, model_version="m:1")
    assert one.run_id != two.run_id and one.periods == N_DAYS - 1
