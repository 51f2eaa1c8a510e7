"""How a vendor observes the true market: latency, clock offset, noise, gaps, stale periods, bad prints.

Every function is vectorised over rows; the only Python loops run over fault windows (a few a day).
Vendor timestamps are ``true ts + clock offset + latency``, truncated to the vendor's resolution,
and each vendor delivers its rows in the order of its own stamps. Faults are drawn in the vendor's
clock; every injected fault is returned as an event so quality scoring has ground truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from lakehouse.schema import PL_TS as NS
from lakehouse.sources.sim_config import VendorConfig
from lakehouse.sources.sim_price import TruthDay
from lakehouse.sources.sim_session import NS_PER_S, Session

BAD_MIN, BAD_MAX = 0.02, 0.10


@dataclass(frozen=True)
class Windows:
    """A vendor's fault windows for one session, in its own clock (ns, half-open [start, end))."""

    gaps: np.ndarray  # (G, 2) int64
    stales: np.ndarray  # (T, 2) int64


def fault_windows(rng: np.random.Generator, session: Session, vendor: VendorConfig) -> Windows:
    """Draw non-overlapping gap and stale windows for one session (Poisson count, exponential length)."""
    offset = int(vendor.clock_offset_ms * 1e6)
    res = vendor.ts_resolution_us * 1000
    day_share = (session.close_ns - session.open_ns) / session.full_ns
    picked: list[tuple[int, int, str]] = []
    for kind, rate, mean_s in (
        ("gap", vendor.gaps_per_day, vendor.gap_mean_s),
        ("stale", vendor.stales_per_day, vendor.stale_mean_s),
    ):
        k = rng.poisson(rate * day_share)
        starts = (rng.integers(session.open_ns, session.close_ns, k) + offset) // res * res
        lengths = np.maximum(rng.exponential(mean_s, k), 1.0) * NS_PER_S
        for s, ln in zip(starts.tolist(), lengths.astype(np.int64).tolist()):
            e = min(s + ln, session.close_ns + offset) // res * res
            if e > s and all(e <= a or s >= b for a, b, _ in picked):
                picked.append((s, e, kind))

    def as_array(kind: str) -> np.ndarray:
        return np.array(sorted((s, e) for s, e, k in picked if k == kind), np.int64).reshape(-1, 2)

    return Windows(as_array("gap"), as_array("stale"))


def _inside(ts: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Index of the window each sorted ``ts`` falls in, or -1."""
    out = np.full(ts.shape[0], -1, np.int64)
    for i, (s, e) in enumerate(windows.tolist()):
        lo, hi = np.searchsorted(ts, [s, e])
        out[lo:hi] = i
    return out


def _observe_ts(rng: np.random.Generator, true_ts: np.ndarray, vendor: VendorConfig) -> np.ndarray:
    latency = vendor.latency_ms * 1e6 * np.asarray(rng.lognormal(0.0, vendor.latency_sigma, size=true_ts.shape[0]))
    ts = true_ts + int(vendor.clock_offset_ms * 1e6) + latency.astype(np.int64)
    res = vendor.ts_resolution_us * 1000
    return ts // res * res


def _seq(ts: np.ndarray) -> np.ndarray:
    """Order of each row among rows with the same stamp (ts sorted)."""
    idx = np.arange(ts.shape[0])
    starts = np.ones(ts.shape[0], bool)
    starts[1:] = ts[1:] != ts[:-1]
    return idx - np.maximum.accumulate(np.where(starts, idx, 0))


def _freeze(values: list[np.ndarray], stale_idx: np.ndarray, ts: np.ndarray, windows: np.ndarray) -> None:
    """Within each stale window, repeat the last value delivered before it (in place)."""
    for i, (s, _e) in enumerate(windows.tolist()):
        rows = np.flatnonzero(stale_idx == i)
        if rows.size == 0:
            continue
        before = int(np.searchsorted(ts, s)) - 1
        src = before if before >= 0 else rows[0]
        for v in values:
            v[rows] = v[src]


def _round_tick(x: np.ndarray, tick: float) -> np.ndarray:
    return np.round(np.round(x / tick) * tick, 10)


def window_events(symbol: str, vendor: VendorConfig, windows: Windows) -> pl.DataFrame:
    """Gap and stale windows as start/end events."""
    rows: list[dict] = []
    for kind, arr in (("gap", windows.gaps), ("stale", windows.stales)):
        for s, e in arr.tolist():
            detail = json.dumps({"duration_ms": (e - s) / 1e6})
            rows += [
                {"ts": s, "kind": f"{kind}_start", "detail": detail},
                {"ts": e, "kind": f"{kind}_end", "detail": detail},
            ]
    frame = pl.DataFrame(rows, schema={"ts": pl.Int64, "kind": pl.String, "detail": pl.String})
    return frame.select(
        pl.col("ts").cast(NS), pl.lit(symbol).alias("symbol_id"), pl.lit(vendor.name).alias("vendor"), "kind", "detail"
    )


def observe_trades(
    rng: np.random.Generator, truth: TruthDay, symbol: str, vendor: VendorConfig, windows: Windows, tick: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the vendor's trade prints (sorted by its stamps, with ``true_ts``) and its bad-print events."""
    ts = _observe_ts(rng, truth.trade_ts, vendor)
    order = np.argsort(ts, kind="stable")
    ts, true_ts = ts[order], truth.trade_ts[order]
    price = truth.trade_price[order] * (1 + vendor.noise_bps * 1e-4 * rng.standard_normal(ts.shape[0]))
    price = _round_tick(price, tick)
    size, side = truth.trade_size[order], truth.trade_side[order]

    stale = _inside(ts, windows.stales)
    _freeze([price], stale, ts, windows.stales)
    keep = _inside(ts, windows.gaps) < 0
    bad = (rng.random(ts.shape[0]) < vendor.bad_print_rate) & keep & (stale < 0)
    bad_idx = np.flatnonzero(bad)
    bad_idx = bad_idx[np.unique(ts[bad_idx], return_index=True)[1]]  # one bad print per stamp
    clean = price[bad_idx]
    factor = 1 + rng.choice([-1.0, 1.0], bad_idx.size) * rng.uniform(BAD_MIN, BAD_MAX, bad_idx.size)
    price[bad_idx] = _round_tick(clean * factor, tick)

    events = pl.DataFrame(
        {
            "ts": pl.Series(ts[bad_idx], dtype=pl.Int64).cast(NS),
            "symbol_id": [symbol] * bad_idx.size,
            "vendor": [vendor.name] * bad_idx.size,
            "kind": ["bad_print"] * bad_idx.size,
            "detail": [
                json.dumps({"table": "trades", "price": float(p), "clean": float(c)})
                for p, c in zip(price[bad_idx].tolist(), clean.tolist())
            ],
        },
        schema={"ts": NS, "symbol_id": pl.String, "vendor": pl.String, "kind": pl.String, "detail": pl.String},
    )

    ts, true_ts, price, size, side = (a[keep] for a in (ts, true_ts, price, size, side))
    n = ts.shape[0]
    sides = pl.Series(side, dtype=pl.Int8) if vendor.reports_side else pl.repeat(None, n, dtype=pl.Int8, eager=True)
    frame = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(NS),
            "symbol_id": pl.repeat(symbol, n, dtype=pl.String, eager=True),
            "price": price,
            "size": size,
            "side": sides,
            "exchange": pl.repeat("SIMX", n, dtype=pl.String, eager=True),
            "conditions": pl.repeat(None, n, dtype=pl.String, eager=True),
            "seq": _seq(ts).astype(np.int64),
            "source": pl.repeat(vendor.name, n, dtype=pl.String, eager=True),
            "true_ts": pl.Series(true_ts, dtype=pl.Int64).cast(NS),
        }
    )
    return frame, events


def observe_quotes(
    rng: np.random.Generator, truth: TruthDay, symbol: str, vendor: VendorConfig, windows: Windows, tick: float
) -> pl.DataFrame:
    """Return the vendor's top-of-book quotes: a sample of the true per-step quotes, as it stamps them."""
    steps = np.flatnonzero(rng.random(truth.grid_ns.shape[0]) < vendor.quote_fraction)
    base = truth.grid_ns[1] - truth.grid_ns[0] if truth.grid_ns.shape[0] > 1 else NS_PER_S
    true_ts = truth.grid_ns[steps] + rng.integers(0, base, steps.size)
    ts = _observe_ts(rng, true_ts, vendor)
    order = np.argsort(ts, kind="stable")
    ts, steps = ts[order], steps[order]
    mid = truth.price[steps] * (1 + vendor.noise_bps * 1e-4 * rng.standard_normal(steps.size))
    hs = truth.half_spread[steps]
    bid = np.floor(mid * (1 - hs) / tick + 1e-9) * tick
    ask = np.maximum(np.ceil(mid * (1 + hs) / tick - 1e-9) * tick, bid + tick)
    bid, ask = np.round(bid, 10), np.round(ask, 10)
    bid_size = np.round(rng.lognormal(np.log(5), 0.7, steps.size)) * 100
    ask_size = np.round(rng.lognormal(np.log(5), 0.7, steps.size)) * 100

    stale = _inside(ts, windows.stales)
    _freeze([bid, ask, bid_size, ask_size], stale, ts, windows.stales)
    keep = _inside(ts, windows.gaps) < 0
    ts, bid, ask, bid_size, ask_size = (a[keep] for a in (ts, bid, ask, bid_size, ask_size))
    n = ts.shape[0]
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(NS),
            "symbol_id": pl.repeat(symbol, n, dtype=pl.String, eager=True),
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "exchange": pl.repeat("SIMX", n, dtype=pl.String, eager=True),
            "seq": _seq(ts).astype(np.int64),
            "source": pl.repeat(vendor.name, n, dtype=pl.String, eager=True),
        }
    )
