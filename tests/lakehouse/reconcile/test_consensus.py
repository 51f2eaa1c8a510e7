"""Consensus on synthetic vendor bars: median, outliers, staleness, weights, known_at."""

from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.reconcile.consensus import consensus

UTC = UTC
T0 = datetime(2022, 12, 13, 0, 1, tzinfo=UTC)


def _bars(rows):
    """rows: (source, minute, close, high_bump)"""
    out = []
    for source, m, close, bump in rows:
        ts = T0 + timedelta(minutes=m)
        out.append(
            {
                "source": source,
                "symbol_id": "BTCUSD:CRYPTO",
                "tf": "1m",
                "ts": ts,
                "open": close,
                "high": close + 1 + bump,
                "low": close - 1,
                "close": close,
                "volume": 1.0,
                "vwap": close,
                "n_trades": 10,
                "last_ts": ts - timedelta(seconds=1),
                "arrival": None,
            }
        )
    return pl.DataFrame(out).with_columns(
        pl.col("ts", "last_ts").dt.cast_time_unit("ns"), pl.col("arrival").cast(pl.Datetime("ns", "UTC"))
    )


def test_bad_high_is_an_outlier_and_left_out():
    rows = [(s, m, 100.0 + m + d, 0.0) for m in range(30) for s, d in (("a", 0.0), ("b", 0.01), ("c", -0.01))]
    rows[3 * 10 + 2] = ("c", 10, 110.0, 500.0)  # a bad print in c's minute 10
    out = consensus(_bars(rows))
    flagged = out.observations.filter(pl.col("outlier"))
    assert flagged.select("source", "ts").rows() == [("c", T0 + timedelta(minutes=10))]
    bar = out.bars.filter(pl.col("ts") == T0 + timedelta(minutes=10)).row(0, named=True)
    assert abs(bar["high"] - 111.0) < 0.05
    assert bar["quality"]["n_src"] == 2 and bar["quality"]["sources"] == ["a", "b"]
    assert abs(bar["quality"]["outlier_frac"] - 1 / 3) < 1e-9


def test_silent_source_goes_stale_and_all_stale_degrades_to_delayed():
    rows = [("a", m, 100.0, 0.0) for m in range(10)] + [("b", m, 101.0, 0.0) for m in range(3)]
    out = consensus(_bars(rows))
    q = out.bars.sort("ts").unnest("quality")
    assert q.filter(pl.col("ts") == T0 + timedelta(minutes=8))["sources"].item().to_list() == ["a"]
    assert not q["stale"].any()
    # a slot where the only delivering source's data is old is flagged stale, not dropped
    late = _bars([("a", 0, 100.0, 0.0)]).with_columns(pl.col("last_ts") - timedelta(minutes=5))
    assert consensus(late).bars["quality"].struct.field("stale").to_list() == [True]


def test_weights_pick_the_trusted_vendor_and_known_at_adds_latency():
    rows = [("a", 0, 100.0, 0.0), ("b", 0, 100.02, 0.0), ("c", 0, 100.04, 0.0)]
    weights = pl.DataFrame(
        {
            "source": ["a", "b", "c"],
            "symbol_id": ["BTCUSD:CRYPTO"] * 3,
            "w": [0.1, 0.1, 5.0],
            "latency_ms": [10.0, 20.0, 250.0],
        }
    )
    bar = consensus(_bars(rows), weights).bars.row(0, named=True)
    assert bar["close"] == 100.04
    assert bar["known_at"] == T0 + timedelta(milliseconds=250)
    assert bar["quality"]["lat_ms"] == 250.0


def test_a_dominant_vendor_cannot_define_normal():
    """The fastest vendor may carry most of the weight, but when it alone prints a bad high, the
    two others agreeing still make the outlier its print, not theirs."""
    rows = [(s, m, 100.0 + m + d, 0.0) for m in range(30) for s, d in (("a", 0.0), ("b", 0.01), ("c", -0.01))]
    rows[3 * 10] = ("a", 10, 110.0, 500.0)  # the trusted vendor's bad print in minute 10
    weights = pl.DataFrame(
        {
            "source": ["a", "b", "c"],
            "symbol_id": ["BTCUSD:CRYPTO"] * 3,
            "w": [50.0, 1.0, 1.0],
            "latency_ms": [0.0, 60.0, 250.0],
        }
    )
    out = consensus(_bars(rows), weights)
    flagged = out.observations.filter(pl.col("outlier")).select("source", "ts").rows()
    assert flagged == [("a", T0 + timedelta(minutes=10))]
    bar = out.bars.filter(pl.col("ts") == T0 + timedelta(minutes=10)).row(0, named=True)
    assert abs(bar["high"] - 111.0) < 0.05


def test_voted_out_vendors_are_recorded_in_quality():
    rows = [(s, m, 100.0 + m + d, 0.0) for m in range(30) for s, d in (("a", 0.0), ("b", 0.01), ("c", -0.01))]
    rows[3 * 10 + 2] = ("c", 10, 110.0, 500.0)
    q = consensus(_bars(rows)).bars.filter(pl.col("ts") == T0 + timedelta(minutes=10)).row(0, named=True)["quality"]
    assert q["sources"] == ["a", "b"] and q["outliers"] == ["c"]
