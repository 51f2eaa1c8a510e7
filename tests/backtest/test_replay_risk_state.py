"""Replay: the engine publishes its risk state on NATS; the kill it triggered fires the scorer's guard."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import nats
import numpy as np
import polars as pl

from backtest.engine import run_backtest
from backtest.replay import replay_risk_state, risk_snapshots
from backtest.sizing import GUARD_DRAWDOWN, RiskState, SizingConfig, guard_for
from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings
from feature_store.contract import STREAMING
from mps.nats_server import NatsServer

OPEN = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def crash_run():
    closes = np.array([100.0] * 5 + [97.0, 94.0, 92.0, 95.0, 99.0])
    bars = pl.DataFrame(
        {
            "symbol_id": "A:US",
            "ts": [OPEN + timedelta(minutes=i + 1) for i in range(len(closes))],
            "open": np.r_[closes[0], closes[:-1]],
            "close": closes,
            "volume": 1000.0,
        }
    )
    cfg = BacktestSettings(
        initial_cash=1_000_000.0,
        costs=BacktestCosts(fee_bps=0.0, half_spread_bps=0.0, slippage="none"),
        guards=BacktestGuards(max_nav_frac=1.0, max_adv_share=1e9, max_intraday_drawdown=0.05),
        calendar="XNYS",
    )
    return run_backtest(bars, bars.select("symbol_id", "ts", pl.lit(1.0).alias("size")), cfg)


def test_snapshots_carry_the_kill_and_fire_the_scorer_guard():
    result = crash_run()
    snaps = list(risk_snapshots(result))
    assert len(snaps) == result.equity.height
    killed = [s for s in snaps if s.kill]
    assert killed and killed[0].ts == result.kills["ts"].dt.epoch("ns")[0]
    assert killed[0].intraday_drawdown >= 0.05
    assert not any(s.kill for s in snaps if s.ts < killed[0].ts)
    cfg = SizingConfig.load()
    state = RiskState(nav=killed[0].nav, intraday_drawdown=killed[0].intraday_drawdown, kill=killed[0].kill)
    assert guard_for(cfg, state, killed[0].ts, killed[0].ts, True) == GUARD_DRAWDOWN
    calm = RiskState(nav=snaps[0].nav, intraday_drawdown=snaps[0].intraday_drawdown, kill=snaps[0].kill)
    assert guard_for(cfg, calm, snaps[0].ts, snaps[0].ts, True) is None


def test_replay_publishes_on_the_risk_subject(tmp_path):
    result = crash_run()

    async def replay(url: str) -> tuple[int, list[dict]]:
        nc = await nats.connect(url)
        got: list[dict] = []

        async def on_message(msg) -> None:
            got.append(json.loads(msg.data))

        sub = await nc.subscribe(STREAMING.subject("risk_state"), cb=on_message)
        sent = await replay_risk_state(nc, result)
        await asyncio.sleep(0.2)
        await sub.unsubscribe()
        await nc.close()
        return sent, got

    with NatsServer(store_dir=tmp_path / "nats") as server:
        sent, got = asyncio.run(replay(server.url))
    assert sent == len(got) > 0
    assert any(m["kill"] for m in got)
    assert [m["ts"] for m in got] == sorted(m["ts"] for m in got)
