"""Benchmark: the event-driven backtest engine vs backtesting.py on the same job, in the same run.

Job: N symbols x one year of XNYS 1-minute bars (every regular-session minute of 2024, about
98,000 bars per symbol), a signal on every bar: signed target units from a noisy momentum, so
positions flip and resize often. Costs: 1 bp fees, no spread, no slippage (what backtesting.py can
model identically); guards that never bind. backtesting.py is single-asset, so it runs once per
symbol and its times are summed. Printed per path: CPU seconds of this process (the machine may be
shared: CPU time is what one core spent, wall time is printed beside it) and bar events/s on CPU time.

- engine loop: the compiled event loop alone (events prepared; the event-driven part);
- engine end-to-end: ``run_backtest`` from polars frames (sessions, ADV, signal alignment, loop,
  equity and trades frames, hashes);
- backtesting.py: ``Backtest(...).run()`` per symbol (pandas frame ready), summed.
The final equity of both is printed; they must agree (the oracle test holds them to 1e-9).

    nice .venv/bin/python benchmarks/backtest.py --symbols 10
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

# this script is named like the package it measures: drop its own folder from the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402

from backtest.engine import run_backtest, run_events  # noqa: E402
from backtest.events import align_targets, build_events  # noqa: E402
from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings  # noqa: E402
from lakehouse.calendars import sessions  # noqa: E402

MINUTE_NS = 60_000_000_000


def make_job(n_symbols: int, seed: int = 11) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars (one per session minute per symbol) and a target-units signal on every bar."""
    table = sessions("XNYS", date(2024, 1, 1), date(2024, 12, 31))
    opens = table["open"].dt.epoch("ns").to_numpy()
    closes = table["close"].dt.epoch("ns").to_numpy()
    ts = np.concatenate([np.arange(o + MINUTE_NS, c + 1, MINUTE_NS) for o, c in zip(opens, closes, strict=True)])
    rng = np.random.default_rng(seed)
    bars, signals = [], []
    n = len(ts)
    for s in range(n_symbols):
        ret = rng.normal(0.0, 8e-4, n)
        close = 100.0 * np.exp(np.cumsum(ret))
        open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, 2e-4, n))
        mom = pd.Series(ret).rolling(20, min_periods=1).mean().to_numpy() / 8e-4 * np.sqrt(20)
        units = 50.0 * np.clip(np.round(mom + rng.normal(0.0, 0.3, n)), -2, 2)
        sym = f"S{s:02d}:US"
        bars.append(
            pl.DataFrame(
                {
                    "symbol_id": sym,
                    "ts": ts,
                    "open": open_,
                    "high": np.maximum(open_, close),
                    "low": np.minimum(open_, close),
                    "close": close,
                    "volume": rng.uniform(5e3, 5e4, n),
                }
            )
        )
        signals.append(pl.DataFrame({"symbol_id": sym, "ts": ts, "units": units}))
    cast = pl.col("ts").cast(pl.Datetime("ns", "UTC"))
    return pl.concat(bars).with_columns(cast), pl.concat(signals).with_columns(cast)


def settings() -> BacktestSettings:
    return BacktestSettings(
        initial_cash=10_000_000.0,
        costs=BacktestCosts(fee_bps=1.0, half_spread_bps=0.0, slippage="none"),
        guards=BacktestGuards(max_nav_frac=1e9, max_adv_share=1e9, max_intraday_drawdown=1.0),
        calendar="XNYS",
    )


def run_backtesting_py(bars: pl.DataFrame, signals: pl.DataFrame, cash: float) -> tuple[float, float, float]:
    """Run backtesting.py per symbol; return (CPU and wall seconds in Backtest.run summed, summed P&L)."""
    import warnings

    from backtesting import Backtest, Strategy

    seconds, wall, pnl = 0.0, 0.0, 0.0
    for sym in bars["symbol_id"].unique(maintain_order=True):
        b = bars.filter(pl.col("symbol_id") == sym)
        units = signals.filter(pl.col("symbol_id") == sym)["units"].to_numpy()
        frame = pd.DataFrame(
            {c.capitalize(): b[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
            index=pd.DatetimeIndex(b["ts"].dt.replace_time_zone(None).to_numpy()),
        )

        class Follow(Strategy):
            def init(self):
                pass

            def next(self, units=units):
                delta = int(units[len(self.data) - 1]) - self.position.size
                if delta > 0:
                    self.buy(size=delta)
                elif delta < 0:
                    self.sell(size=-delta)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = Backtest(frame, Follow, cash=cash, commission=1e-4, spread=0.0)
            t, w = time.process_time(), time.perf_counter()
            stats = bt.run()
            seconds += time.process_time() - t
            wall += time.perf_counter() - w
        pnl += float(stats["_equity_curve"]["Equity"].iloc[-1]) - cash
    return seconds, wall, pnl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="engine timings: best of N")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    bars, signals = make_job(args.symbols)
    n = bars.height
    cfg = settings()
    print(f"job: {args.symbols} symbols x {n // args.symbols:,} 1-minute bars = {n:,} bar events, signal on every bar")
    # backtesting.py places no order on the first bar; neither does the engine then
    sig = signals.with_columns(pl.when(pl.col("ts") > pl.col("ts").min()).then(pl.col("units")).alias("units"))

    events = build_events(bars, cfg.costs, cfg.calendar)
    target = align_targets(events, sig, "units")
    run_events(events, target, cfg, units=True)  # compile / load the cached kernel
    loop_cpu, loop_wall = _best(lambda: run_events(events, target, cfg, units=True), args.repeat)
    holder = {}
    e2e_cpu, e2e_wall = _best(lambda: holder.update(r=run_backtest(bars, sig, cfg, target="units")), args.repeat)
    result = holder["r"]
    engine_pnl = float(result.equity["nav"][-1]) - cfg.initial_cash
    print(
        f"engine loop        : cpu {loop_cpu:8.3f} s (wall {loop_wall:7.3f})  {n / loop_cpu / 1e6:8.2f} M bar events/s"
    )
    print(f"engine end-to-end  : cpu {e2e_cpu:8.3f} s (wall {e2e_wall:7.3f})  {n / e2e_cpu / 1e6:8.2f} M bar events/s")
    print(f"engine trades      : {result.trades.height:,}  P&L {engine_pnl:,.4f}")
    if args.skip_baseline:
        return
    # backtesting.py keeps one cash account per symbol: give each the whole NAV (no margin limit binds)
    bt_cpu, bt_wall, bt_pnl = run_backtesting_py(bars, signals, cfg.initial_cash)
    print(f"backtesting.py     : cpu {bt_cpu:8.3f} s (wall {bt_wall:7.3f})  {n / bt_cpu / 1e6:8.4f} M bar events/s")
    print(f"backtesting.py P&L : {bt_pnl:,.4f}  (engine - backtesting.py: {engine_pnl - bt_pnl:.3e})")
    print(f"speed-up (cpu)     : loop {bt_cpu / loop_cpu:,.0f}x, end-to-end {bt_cpu / e2e_cpu:,.0f}x")


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best CPU and best wall seconds of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        t, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - t)
        wall.append(time.perf_counter() - w)
    return min(cpu), min(wall)


if __name__ == "__main__":
    main()
