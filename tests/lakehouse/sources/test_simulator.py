"""The multi-vendor market simulator: determinism, vendor latency and clocks, injected faults, the
option chain, and an idempotent, balanced ingest into a temporary lake."""

from __future__ import annotations

import json
from datetime import UTC

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ConfigError
from lakehouse.ingest import Ingestor
from lakehouse.security_master import known_symbols
from lakehouse.sources import simulator as sim
from lakehouse.sources.registry import parse_params
from lakehouse.sources.sim_config import DEFAULT_VENDORS
from lakehouse.sources.sim_options import black_scholes
from lakehouse.tables import (
    BRONZE_OPTIONS_CHAIN,
    BRONZE_QUARANTINE,
    BRONZE_QUOTES,
    BRONZE_SIM_EVENTS,
    BRONZE_SIM_TRUTH,
    BRONZE_TRADES,
)

# Faults far more often than the defaults, so a 20-minute session shows each kind.
FAULTY = [
    v.model_copy(update={"gaps_per_day": 40, "stales_per_day": 60, "bad_print_rate": 0.003}) for v in DEFAULT_VENDORS
]


def small(**kw) -> sim.Params:
    base = {"symbols": ["SIM1:SIM", "SIM2:SIM"], "session_minutes": 20, "trades_per_day": 40_000}
    return sim.Params(**{**base, **kw})


def frames(params: sim.Params) -> dict[tuple[str, str], pl.DataFrame]:
    """Every chunk of every batch, concatenated per (batch file, table)."""
    out: dict[tuple[str, str], list[pl.DataFrame]] = {}
    for batch in sim.batches(params):
        for chunk in batch.chunks:
            out.setdefault((batch.file, chunk.table.qualified), []).append(chunk.data)
    return {k: pl.concat(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def faulty_lake(tmp_path_factory):
    """A lake holding two 20-minute sessions of two symbols from the fault-heavy vendors."""
    from datetime import datetime

    from lakehouse.storage import Lake

    lake = Lake(str(tmp_path_factory.mktemp("simlake")))
    params = small(vendors=FAULTY, n_days=2)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    report = Ingestor(lake, lambda: at, known_symbols()).run(sim.batches(params))
    return lake, params, report


def test_same_seed_gives_identical_frames():
    a, b = frames(small()), frames(small())
    assert a.keys() == b.keys() and len(a) == 2 * 5
    for key in a:
        assert_frame_equal(a[key], b[key])
    assert [x.batch_id for x in sim.batches(small())] == [x.batch_id for x in sim.batches(small())]


def test_different_seeds_differ():
    a, b = frames(small(seed=1)), frames(small(seed=2))
    key = ("simulator://SIM1:SIM/2026-01-05", "bronze.trades")
    assert a[key].height != b[key].height or not a[key]["price"].equals(b[key]["price"])


def test_adding_a_symbol_leaves_the_others_unchanged():
    one, two = frames(small(symbols=["SIM1:SIM"])), frames(small(symbols=["SIM1:SIM", "SIM3:SIM"]))
    for key, df in one.items():
        assert_frame_equal(df, two[key])

    def ids(p):
        return {b.file: b.batch_id for b in sim.batches(p)}

    assert (
        ids(small(symbols=["SIM1:SIM"]))["simulator://SIM1:SIM/2026-01-05"]
        == ids(small(symbols=["SIM1:SIM", "SIM3:SIM"]))["simulator://SIM1:SIM/2026-01-05"]
    )


@pytest.mark.parametrize("vendor", DEFAULT_VENDORS, ids=lambda v: v.name)
def test_vendor_stamps_lag_truth_by_clock_offset_plus_latency(vendor):
    params = small(symbols=["SIM1:SIM"], vendors=[vendor])
    symbol, session, truth = next(sim.simulate_days(params))
    trades = sim.vendor_day(params, symbol, session, truth, vendor).trades
    lag_ms = ((trades["ts"].dt.epoch("ns") - trades["true_ts"].dt.epoch("ns")) / 1e6).to_numpy()
    expected = vendor.clock_offset_ms + vendor.latency_ms  # the lognormal's median is latency_ms
    assert abs(np.median(lag_ms) - expected) < 0.05 * vendor.latency_ms + vendor.ts_resolution_us / 1000
    assert trades["ts"].is_sorted()  # each vendor delivers in the order of its own stamps


def test_order_flow_predicts_the_step_return():
    _, _, truth = next(sim.simulate_days(small(symbols=["SIM1:SIM"], session_minutes=60)))
    flow = np.bincount(truth.trade_step, weights=truth.trade_side, minlength=truth.price.size)[:-1]
    ret = np.diff(np.log(truth.price))
    assert np.corrcoef(flow, ret)[0, 1] > 0.2


def test_trading_is_u_shaped_over_the_session():
    params = small(symbols=["SIM1:SIM"], session_minutes=None, trades_per_day=20_000)
    _, session, truth = next(sim.simulate_days(params))
    hour = (truth.trade_ts - session.open_ns) // (3600 * 10**9)
    per_hour = np.bincount(hour, minlength=7)
    assert per_hour[0] > 1.5 * per_hour[3] and per_hour[6] > per_hour[3]  # 6 = the last half hour


def test_ingest_balances_and_is_idempotent(faulty_lake, clock):
    lake, params, report = faulty_lake
    assert report.balanced and not report.failures
    assert report.total("quarantined") == 0 and report.total("rows_written") == report.total("rows_read")
    assert set(lake.read(BRONZE_TRADES)["source"]) == {"sim-a", "sim-b", "sim-c"}
    before = {s.qualified: lake.read(s).sort(list(s.keys)) for s in (BRONZE_TRADES, BRONZE_QUOTES, BRONZE_SIM_EVENTS)}
    again = Ingestor(lake, clock, known_symbols()).run(sim.batches(params))
    assert again.balanced and again.total("rows_written") == 0
    assert again.total("duplicates") == report.total("rows_read")
    for spec in (BRONZE_TRADES, BRONZE_QUOTES, BRONZE_SIM_EVENTS):
        assert_frame_equal(lake.read(spec).sort(list(spec.keys)), before[spec.qualified])
    assert lake.read(BRONZE_QUARANTINE).height == 0


def _trades_vs_truth(lake, vendor) -> pl.DataFrame:
    """Each trade of ``vendor`` beside the true mid at its (clock-corrected) stamp."""
    truth = lake.read(BRONZE_SIM_TRUTH, columns=["ts", "symbol_id", "price"]).rename({"price": "mid"}).sort("ts")
    offset = pl.duration(microseconds=int(vendor.clock_offset_ms * 1000), time_unit="ns")
    trades = (
        lake.read(BRONZE_TRADES)
        .filter(pl.col("source") == vendor.name)
        .with_columns((pl.col("ts") - offset).alias("t0"))
        .sort("t0")
    )
    return trades.join_asof(
        truth, left_on="t0", right_on="ts", by="symbol_id", strategy="backward", suffix="_truth", check_sortedness=False
    )


@pytest.mark.parametrize("vendor", FAULTY, ids=lambda v: v.name)
def test_bad_prints_in_sim_events_are_the_prices_that_deviate(faulty_lake, vendor):
    lake, _, _ = faulty_lake
    joined = _trades_vs_truth(lake, vendor).with_columns(((pl.col("price") / pl.col("mid")) - 1).abs().alias("dev"))
    deviating = joined.filter(pl.col("dev") > 0.015).select("symbol_id", "ts", "price").sort("symbol_id", "ts")
    events = (
        lake.read(BRONZE_SIM_EVENTS)
        .filter((pl.col("vendor") == vendor.name) & (pl.col("kind") == "bad_print"))
        .sort("symbol_id", "ts")
    )
    assert events.height >= 3
    assert_frame_equal(deviating.select("symbol_id", "ts"), events.select("symbol_id", "ts"))
    recorded = [json.loads(d)["price"] for d in events["detail"]]
    assert recorded == deviating["price"].to_list()
    assert joined.filter(pl.col("dev") <= 0.015)["dev"].max() < 0.01  # everything else is near the truth


def _windows(lake, vendor: str, kind: str) -> list[tuple]:
    ev = lake.read(BRONZE_SIM_EVENTS).filter(pl.col("vendor") == vendor).sort("ts")
    starts = ev.filter(pl.col("kind") == f"{kind}_start").select("symbol_id", "ts").rows()
    ends = ev.filter(pl.col("kind") == f"{kind}_end").select("symbol_id", "ts").rows()
    return [(s[0], s[1], e[1]) for s, e in zip(sorted(starts), sorted(ends))]


@pytest.mark.parametrize("vendor", [v.name for v in FAULTY])
def test_stale_periods_repeat_the_last_price_and_gaps_are_empty(faulty_lake, vendor):
    lake, _, _ = faulty_lake
    trades = lake.read(BRONZE_TRADES).filter(pl.col("source") == vendor)
    quotes = lake.read(BRONZE_QUOTES).filter(pl.col("source") == vendor)

    def inside(df, sym, a, b):
        return df.filter((pl.col("symbol_id") == sym) & (pl.col("ts") >= a) & (pl.col("ts") < b))

    stales, gaps = _windows(lake, vendor, "stale"), _windows(lake, vendor, "gap")
    assert stales and gaps
    frozen_trades = 0
    for sym, a, b in stales:
        t, q = inside(trades, sym, a, b), inside(quotes, sym, a, b)
        assert t["price"].n_unique() <= 1 and q.select("bid", "ask", "bid_size", "ask_size").n_unique() <= 1
        frozen_trades += t.height
    assert frozen_trades > 10
    for sym, a, b in gaps:
        assert inside(trades, sym, a, b).height == 0 and inside(quotes, sym, a, b).height == 0


def test_option_chain_greeks_are_sane(faulty_lake):
    lake, params, _ = faulty_lake
    chain = lake.read(BRONZE_OPTIONS_CHAIN)
    assert chain.height == 2 * 2 * 5 * 17 * 2  # days x symbols x expiries x strikes x rights
    calls, puts = chain.filter(pl.col("right") == "C"), chain.filter(pl.col("right") == "P")
    assert calls["delta"].is_between(0, 1).all() and puts["delta"].is_between(-1, 0).all()
    assert (chain["gamma"] > 0).all() and (chain["vega"] > 0).all() and (chain["bid"] <= chain["ask"]).all()
    pair = calls.join(puts, on=["underlying", "ts", "expiry", "strike"], suffix="_p")
    spot = lake.read(BRONZE_SIM_TRUTH).join(
        pair.select("underlying", "ts").unique(), left_on=["symbol_id", "ts"], right_on=["underlying", "ts"]
    )
    pair = pair.join(
        spot.select(pl.col("symbol_id").alias("underlying"), "ts", pl.col("price").alias("spot")),
        on=["underlying", "ts"],
    )
    t = (pair["expiry"] - pair["ts"].dt.date()).dt.total_days().to_numpy() / 365.0
    rate = params.dynamics.rate
    parity = pair["last"] - pair["last_p"] - (pair["spot"] - pair["strike"] * np.exp(-rate * t))
    assert parity.abs().max() < 0.011  # both legs rounded to cents
    assert ((pair["delta"] - pair["delta_p"]) - 1).abs().max() < 1e-9


def test_black_scholes_matches_the_textbook_values():
    g = black_scholes(100.0, 100.0, 1.0, 0.2, 0.05, np.array([True, False]))
    np.testing.assert_allclose(g["price"], [10.4506, 5.5735], atol=1e-4)
    np.testing.assert_allclose(g["delta"], [0.6368, -0.3632], atol=1e-4)


def test_params_are_strict():
    with pytest.raises(ConfigError, match="trade_per_day"):
        parse_params("simulator", {"trade_per_day": 10})
    with pytest.raises(ConfigError):
        parse_params("simulator", {"vendors": [{"name": "x", "latency": 3}]})
    assert parse_params("simulator", {"n_days": 2}).n_days == 2
