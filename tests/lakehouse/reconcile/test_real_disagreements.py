"""Real vendor disagreements reconciled: BTC on three venues (minute), GOOG daily from three sources."""

from datetime import UTC, date, datetime

import polars as pl
from reconcile_vendor_files import between, lean_daily, lean_minute, mapped_daily

from lakehouse.reconcile.consensus import ConsensusConfig, consensus
from lakehouse.reconcile.pipeline import ReconcileConfig, reconcile_window

UTC = UTC


def test_btc_three_venue_minute_consensus(shared_data):
    lean = shared_data / "lean"
    files = {
        "binance": lean / "crypto/binance/minute/btcbusd/20221213_trade.zip",
        "bybit": lean / "crypto/bybit/minute/btcusdt/20221213_trade.zip",
        "binance-futures": lean / "cryptofuture/binance/minute/btcusd/20221213_trade.zip",
    }
    bars = pl.concat([lean_minute(p, s, "BTCUSD:CRYPTO", quote=False) for s, p in files.items()])
    out = reconcile_window(
        pl.DataFrame(),
        bars,
        {"BTCUSD:CRYPTO": "24/7"},
        datetime(2022, 12, 13, tzinfo=UTC),
        datetime(2022, 12, 14, tzinfo=UTC),
        cfg=ReconcileConfig(timeframes=("1m", "1h")),
    )
    minute = out.bars.filter(pl.col("tf") == "1m").unnest("quality")
    assert minute.height == 1440 and minute["n_src"].min() >= 2 and (minute["n_src"] == 3).mean() > 0.9
    assert out.clock_offsets.height == 0  # the venues' clocks agree
    pivot = (
        bars.pivot(on="source", index="ts", values="close")
        .drop_nulls()
        .join(minute.select("ts", pl.col("close").alias("consensus")), on="ts")
    )
    # the consensus sits between the venues: never further from the median venue than the venues are apart
    spread = pl.max_horizontal("binance", "bybit", "binance-futures") - pl.min_horizontal(
        "binance", "bybit", "binance-futures"
    )
    lo = pl.min_horizontal("binance", "bybit", "binance-futures")
    assert pivot.filter((pl.col("consensus") < lo) | (pl.col("consensus") > lo + spread)).height == 0
    assert (pivot["binance"] - pivot["bybit"]).abs().median() < 10  # ~5 USD apart, as documented
    assert out.vendor_stats["uptime"].min() > 0.4 and out.vendor_stats.height == 3


def test_goog_2004_08_19_open_high_flagged_for_the_odd_source(shared_data):
    lean = lean_daily(shared_data / "lean/equity/usa/daily/goog.zip", "lean", "GOOG:US")
    bt = mapped_daily(shared_data, "backtesting_goog", "backtesting/GOOG.csv", "backtesting", "GOOG:US")
    yahoo = mapped_daily(
        shared_data, "yahoo_daily", "mplfinance/yahoofinance-GOOG-20040819-20180120.csv", "yahoo", "GOOG:US"
    )
    lo, hi = date(2004, 8, 19), date(2004, 12, 31)
    lean, bt, yahoo = (between(f, lo, hi) for f in (lean, bt, yahoo))
    # Yahoo is split-adjusted: bring it to the raw scale by its median ratio to the raw vendors
    scale = bt.join(yahoo, on="ts").select((pl.col("close") / pl.col("close_right")).median()).item()
    yahoo = yahoo.with_columns(pl.col("open", "high", "low", "close") * scale)
    # rescaled adjusted prices carry rounding of a few bps: daily bars use a 10 bps sigma floor
    out = consensus(pl.concat([lean, bt, yahoo]), cfg=ConsensusConfig(floor_bps=10.0))
    first = datetime(2004, 8, 19, 20, 0, tzinfo=UTC)
    flagged = out.observations.filter(pl.col("outlier"))
    assert flagged.filter(pl.col("ts") == first)["source"].to_list() == ["lean"]
    bar = out.bars.filter(pl.col("ts") == first).row(0, named=True)
    assert abs(bar["open"] - 100.0) < 1.0 and abs(bar["high"] - 104.06) < 1.0
    assert bar["quality"]["sources"] == ["backtesting", "yahoo"]
    assert flagged.height / out.observations.height < 0.05  # the rest of the year agrees
