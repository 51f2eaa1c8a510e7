"""Replay a backtest's risk state onto NATS, so the scorer's drawdown guard reads what the engine saw.

Per equity row (one per timestamp): NAV, the drawdown from the session's peak NAV (counting the NAV
the session opened with, as the engine does), and the kill
switch, which stays on from the engine's trigger to the end of that session (the engine ignores
signals until the next one). Published with ``backtest.risk_state.publish_risk_state``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from backtest.engine import BacktestResult
from backtest.risk_state import RiskSnapshot, publish_risk_state


def risk_snapshots(result: BacktestResult) -> Iterator[RiskSnapshot]:
    """Yield the risk state after each timestamp of the run, in time order."""
    eq = result.equity
    ts = eq["ts"].dt.epoch("ns").to_numpy()
    day = eq["day"].to_numpy()
    nav = eq["nav"].to_numpy()
    starts = np.r_[True, day[1:] != day[:-1]]
    group = np.cumsum(starts) - 1
    opened = np.where(starts, np.r_[result.settings.initial_cash, nav[:-1]], -np.inf)  # NAV the session opened with
    peak = (
        pl.DataFrame({"g": group, "nav": np.maximum(nav, opened)})
        .select(pl.col("nav").cum_max().over("g"))["nav"]
        .to_numpy()
    )
    kill_ts = result.kills["ts"].dt.epoch("ns").to_numpy()
    killed_group = set(group[np.searchsorted(ts, kill_ts)].tolist())
    first_kill = {int(group[i]): int(ts[i]) for i in np.searchsorted(ts, kill_ts)}
    for i in range(len(ts)):
        g = int(group[i])
        kill = g in killed_group and ts[i] >= first_kill[g]
        yield RiskSnapshot.from_equity(int(ts[i]), float(nav[i]), float(peak[i]), kill=kill)


async def replay_risk_state(nc, result: BacktestResult, *, only_changes: bool = True) -> int:
    """Publish the run's risk states over a connected nats-py client; return how many were sent.

    ``only_changes`` skips a state equal (NAV, drawdown, kill) to the previous one.
    """
    sent, last = 0, None
    for snap in risk_snapshots(result):
        key = (snap.nav, snap.intraday_drawdown, snap.kill)
        if only_changes and key == last:
            continue
        await publish_risk_state(nc, snap)
        last = key
        sent += 1
    return sent
