"""Mid-quote tick labels on real BAC ticks: dense seconds, the quote mid as of each second, no bid-ask bounce."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, TableError
from feature_store.labels import LabelSpec, make_labels, tick_label_spec

SLICE = (datetime(2013, 10, 7, 14, 0, tzinfo=UTC), datetime(2013, 10, 7, 14, 30, tzinfo=UTC))  # 10:00-10:30 NY


@pytest.fixture(scope="module")
def bac(shared_data) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """BAC trades, NBBO quotes and 1 s trade bars (stamped at their end) of 30 minutes of 2013-10-07."""
    from lakehouse.sources import lean

    out = []
    for kind in ("trade", "quote"):
        params = lean.Params(root=shared_data / "lean", files=(Path(f"equity/usa/tick/bac/20131007_{kind}.zip"),))
        (batch,) = lean.batches(params, lambda: None)
        frame = pl.concat([c.data for c in batch.chunks]).drop("_row", "_raw", strict=False)
        out.append(frame.filter(pl.col("ts").is_between(*SLICE, closed="left")))
    trades, quotes = out
    bars = (
        trades.sort("ts")
        .with_columns(pl.col("ts").dt.offset_by("999999999ns").dt.truncate("1s").alias("ts"))  # (t - 1 s, t]
        .group_by("symbol_id", "ts", maintain_order=True)
        .agg(pl.col("price").last().alias("close"))
        .with_columns(
            pl.col("ts").alias("known_at"), pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("day")
        )
    )
    return trades, quotes, bars


def _lag1(frame: pl.DataFrame) -> float:
    r = frame.filter(pl.col("horizon") == 1).sort("ts")["log_return"].to_numpy()
    return float(np.corrcoef(r[:-1], r[1:])[0, 1])


def test_mid_labels_are_the_quote_mid_on_every_second(bac):
    trades, quotes, bars = bac
    spec = tick_label_spec()
    assert spec.price == "mid" and spec.row()["price"] == "mid"
    mid = make_labels(bars, spec, quotes=quotes)
    one = mid.filter(pl.col("horizon") == 1).sort("ts")
    assert (np.diff(one["ts"].dt.epoch("ns").to_numpy()) == 1_000_000_000).all()  # dense: h rows = h seconds
    assert one.height >= bars.height  # every second of the span, quiet ones too
    # the label at t for h = 30 is log(mid(t + 30 s) / mid(t)), mid = of the last book stamped <= t
    # (quote rows update one side of the NBBO: each side holds until updated)
    q = quotes.sort("ts", "seq").with_columns(pl.col("bid").forward_fill(), pl.col("ask").forward_fill())
    q = q.filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid")))
    qt, qm = q["ts"].dt.epoch("ns").to_numpy(), ((q["bid"] + q["ask"]) / 2).to_numpy()
    h30 = mid.filter(pl.col("horizon") == 30).sort("ts")
    ts = h30["ts"].dt.epoch("ns").to_numpy()
    at = lambda t: qm[np.searchsorted(qt, t, side="right") - 1]  # noqa: E731
    pick = np.linspace(0, len(ts) - 1, 50).astype(int)
    expected = np.log(at(ts[pick] + 30_000_000_000) / at(ts[pick]))
    np.testing.assert_allclose(h30["log_return"].to_numpy()[pick], expected, atol=1e-12)
    assert ((h30["known_at"] - h30["ts"]).dt.total_seconds() == 30).all()


def test_trade_labels_bounce_and_mid_labels_do_not(bac):
    """Trade-price 1 s returns are strongly negatively autocorrelated (the next print's side); mids are not."""
    _, quotes, bars = bac
    trade = make_labels(bars, tick_label_spec(price="trade"))
    mid = make_labels(bars, tick_label_spec(), quotes=quotes)
    assert _lag1(trade) < -0.2, _lag1(trade)
    assert abs(_lag1(mid)) < 0.1, _lag1(mid)


def test_mid_labels_need_quotes_and_a_1s_set(bac):
    _, quotes, bars = bac
    with pytest.raises(TableError, match="quote mids"):
        make_labels(bars, tick_label_spec())
    with pytest.raises(TableError, match="no two-sided quote"):
        make_labels(bars, tick_label_spec(), quotes=quotes.filter(pl.col("ts") < SLICE[0]))
    with pytest.raises(ConfigError, match="tf 1s"):
        LabelSpec("x", "1d", (1,), price="mid")
    with pytest.raises(ConfigError, match="price"):
        LabelSpec("x", "1s", (1,), price="last")


def test_trade_labels_are_dense_seconds_too(bac):
    """Silver keeps only traded seconds; a 1 s trade label is still one second, the close carried."""
    _, _, bars = bac
    one = make_labels(bars, tick_label_spec(price="trade")).filter(pl.col("horizon") == 1).sort("ts")
    assert bars.height < 0.6 * one.height  # most seconds of the slice hold no trade
    assert (np.diff(one["ts"].dt.epoch("ns").to_numpy()) == 1_000_000_000).all()
    close = bars.sort("ts")
    t, c = close["ts"].dt.epoch("ns").to_numpy(), close["close"].to_numpy()
    ts = one["ts"].dt.epoch("ns").to_numpy()
    last = lambda x: c[np.searchsorted(t, x, side="right") - 1]  # noqa: E731
    np.testing.assert_allclose(one["log_return"].to_numpy(), np.log(last(ts + 1_000_000_000) / last(ts)), atol=1e-12)
