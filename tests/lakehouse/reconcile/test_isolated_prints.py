"""Isolated prints (bad prints) vs frozen feeds and real spikes, on small synthetic tick streams."""

from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.reconcile.bars import build_bars
from lakehouse.reconcile.consensus import consensus
from lakehouse.reconcile.isolated_prints import screen_prints

UTC = UTC
T0 = datetime(2022, 12, 13, 10, 0, tzinfo=UTC)
CAL = {"X:CRYPTO": "24/7"}
N = 300  # five minutes of one print a second, bouncing between bid (100.00) and ask (100.01)


def _base(phase: int = 0) -> list[float]:
    """The bouncing tape as one vendor sees it (``phase`` shifts the bounce: vendors differ by a tick)."""
    return [100.0 + 0.01 * ((i + phase) % 2) for i in range(N)]


BASE = _base()
MINUTE3 = 120  # prints 120-179 end in the 10:03 bar


def _ticks(source: str, prices: list[float]) -> pl.DataFrame:
    ts = [T0 + timedelta(seconds=i, milliseconds=500) for i in range(len(prices))]
    return pl.DataFrame(
        {"source": source, "symbol_id": "X:CRYPTO", "ts": ts, "price": prices, "size": 1.0}
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


def _end(first_print: int) -> datetime:
    return T0 + timedelta(minutes=first_print // 60 + 1)


def _bar(out, first_print: int) -> dict:
    return out.bars.filter(pl.col("ts") == _end(first_print)).row(0, named=True)


def _reconcile(ticks: pl.DataFrame):
    screen = screen_prints(ticks)
    return consensus(build_bars(ticks, "1m", CAL).bars, isolated=screen.bars("1m", CAL), screened=screen.screened)


def test_only_the_isolated_print_is_found():
    bad = BASE.copy()
    bad[MINUTE3 + 30] = 103.0  # one print 3% away, then straight back
    frozen = BASE[:MINUTE3] + [100.3] * 20 + BASE[MINUTE3 + 20 :]  # a feed repeating an old price, then thawing
    step = BASE[:MINUTE3] + [p + 0.5 for p in BASE[MINUTE3:]]  # a real level shift
    ticks = pl.concat([_ticks("bad", bad), _ticks("frozen", frozen), _ticks("step", step)])
    screen = screen_prints(ticks)
    assert screen.isolated.select("source", "price").rows() == [("bad", 103.0)]
    assert sorted(screen.screened["source"]) == ["bad", "frozen", "step"]


def test_bad_print_blamed_on_the_right_vendor_with_only_two():
    bad = _base(1)
    bad[MINUTE3 + 40] = 97.0
    out = _reconcile(pl.concat([_ticks("a", BASE), _ticks("b", bad)]))
    assert out.observations.filter(pl.col("outlier")).select("source", "ts").rows() == [("b", _end(MINUTE3))]
    bar = _bar(out, MINUTE3)
    assert bar["low"] == 100.0 and bar["quality"]["sources"] == ["a"]


def test_frozen_vendor_is_left_out_but_not_an_outlier():
    frozen = _base(0)[:MINUTE3] + [100.3] * 20 + _base(0)[MINUTE3 + 20 :]
    out = _reconcile(pl.concat([_ticks("a", BASE), _ticks("b", _base(1)), _ticks("c", frozen)]))
    obs = out.observations.filter(pl.col("ts") == _end(MINUTE3)).sort("source")
    assert obs["deviant"].to_list() == [False, False, True] and not out.observations["outlier"].any()
    assert obs["used"].all()
    bar = _bar(out, MINUTE3)
    assert (bar["open"], bar["high"]) == (100.0, 100.01) and bar["quality"]["n_src"] == 3


def test_real_spike_printed_by_most_vendors_stays():
    spike_a, spike_b = BASE.copy(), _base(1)
    spike_a[MINUTE3 + 30] = spike_b[MINUTE3 + 30] = 101.5
    out = _reconcile(pl.concat([_ticks("a", spike_a), _ticks("b", spike_b), _ticks("c", BASE)]))
    assert not out.observations["outlier"].any()
    assert _bar(out, MINUTE3)["high"] == 101.5


def test_vendor_bars_without_ticks_keep_the_bar_level_rule():
    frozen = BASE[:MINUTE3] + [100.3] * 20 + BASE[MINUTE3 + 20 :]
    ticks = pl.concat([_ticks("a", BASE), _ticks("b", _base(1)), _ticks("c", frozen)])
    out = consensus(build_bars(ticks, "1m", CAL).bars)  # nothing screened: a deviating bar is an outlier
    assert out.observations.filter(pl.col("outlier")).select("source", "ts").rows() == [("c", _end(MINUTE3))]
