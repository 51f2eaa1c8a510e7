"""Clock offsets by cross-correlation: synthetic shifts and the real FXCM/OANDA EURUSD files."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from reconcile_vendor_files import lean_minute

from lakehouse.reconcile.clock_offset import apply_offsets, detect_offsets
from lakehouse.reconcile.sessions import session_fit

UTC = UTC


def test_synthetic_shift_is_found_and_undone():
    rng = np.random.default_rng(1)
    n = 5000
    ts = [datetime(2022, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)]
    price = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    ref = pl.DataFrame({"source": "ref", "symbol_id": "X", "ts": ts, "close": price})
    late = ref.with_columns(pl.lit("late").alias("source"), pl.col("ts") + timedelta(minutes=37))
    bars = pl.concat([ref, late]).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    off = detect_offsets(bars, None, None, reference={"X": "ref"})
    assert off["offset_ns"].to_list() == [-37 * 60 * 10**9]
    fixed = apply_offsets(bars, off).filter(pl.col("source") == "late")
    assert fixed["ts"].min() == ts[0]


def test_fxcm_oanda_eurusd_offset_is_300_minutes(shared_data):
    folder = shared_data / "lean" / "forex"
    bars = pl.concat(
        [
            lean_minute(p, v, "EURUSD:FX", quote=True)
            for v in ("fxcm", "oanda")
            for p in sorted((folder / v / "minute" / "eurusd").glob("*.zip"))
        ]
    )
    fit = session_fit(bars, {"EURUSD:FX": "24/5"})
    off = detect_offsets(bars, None, None, session_fit=fit)
    row = off.row(0, named=True)
    assert abs(row["offset_ns"]) == 300 * 60 * 10**9 and row["corr"] > 0.9
    assert (row["source"], row["reference"]) == ("fxcm", "oanda")  # OANDA's week opens Sunday 21:00 UTC
    aligned = apply_offsets(bars, off)
    pivot = aligned.pivot(on="source", index="ts", values="close").drop_nulls()
    pips = ((pivot["fxcm"] - pivot["oanda"]).abs() * 1e4).median()
    assert pips < 1.0  # ~0.4 pip once aligned (vs tens of pips before)


def test_short_window_noise_is_not_an_offset():
    """Regression: a 50-minute window of unrelated returns must not yield an offset."""
    import numpy as np
    import polars as pl

    from lakehouse.reconcile.clock_offset import best_lag, noise_ceiling

    rng = np.random.default_rng(7)
    ts = pl.Series(np.arange(50) * 60_000_000_000 + 1_700_000_000_000_000_000).cast(pl.Datetime("ns", "UTC"))
    hits = 0
    for _ in range(40):
        a = pl.DataFrame({"ts": ts, "close": 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 50)))})
        b = pl.DataFrame({"ts": ts, "close": 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 50)))})
        hits += best_lag(a, b)[0] != 0
    assert hits == 0
    assert noise_ceiling(50, 99) > 0.4 > noise_ceiling(5000, 1441)
