"""The multi-vendor market simulator: the embedded default data of ``make demo``.

Per symbol one true market (``sim_price``) is observed by several vendors (``sim_vendors``), each with
its own latency, clock offset, noise, gaps, stale periods and bad prints. Output per (symbol, session)
is one ``Batch`` with chunks for ``bronze.trades`` and ``bronze.quotes`` (``source`` = vendor),
``bronze.options_chain`` (``sim_options``), and the ground truth ``bronze.sim_truth`` and
``bronze.sim_events`` so reconciliation can be scored.

Determinism: every random stream is a ``numpy`` Generator seeded from (seed, symbol, day, vendor,
stream), so the same params give identical frames and adding a symbol or vendor leaves the others'
output unchanged. The price path carries from one session to the next (close -> next open).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from lakehouse.ingest import Batch, Chunk, Clock, text_batch_id
from lakehouse.sources.sim_config import SimParams, VendorConfig
from lakehouse.sources.sim_options import option_chain
from lakehouse.sources.sim_price import PathState, TruthDay, simulate_truth
from lakehouse.sources.sim_session import Session, sessions, year_seconds
from lakehouse.sources.sim_vendors import NS, fault_windows, observe_quotes, observe_trades, window_events
from lakehouse.tables import BRONZE_OPTIONS_CHAIN, BRONZE_QUOTES, BRONZE_SIM_EVENTS, BRONZE_SIM_TRUTH, BRONZE_TRADES

SOURCE = "simulator"
Params = SimParams

_TRUTH, _WINDOWS, _TRADES, _QUOTES, _OPTIONS = range(5)


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(seed: int, symbol: str, session: Session, stream: int, vendor: str = "") -> np.random.Generator:
    """A generator that depends only on (seed, symbol, day, vendor, stream)."""
    spawn_key = (_key(symbol), session.day.toordinal(), _key(vendor), stream)
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=spawn_key))


@dataclass(frozen=True)
class VendorDay:
    """One vendor's view of one symbol-session. ``trades`` keeps ``true_ts`` (dropped before ingest)."""

    trades: pl.DataFrame
    quotes: pl.DataFrame
    events: pl.DataFrame


def simulate_days(params: SimParams) -> Iterator[tuple[str, Session, TruthDay]]:
    """Yield (symbol, session, truth) day by day, carrying each symbol's path across sessions."""
    dyn = params.dynamics
    year_s = year_seconds(params.session)
    states = {
        s: PathState(float(np.log(params.base_price)), min(1, len(dyn.regime_vol) - 1), 0.0) for s in params.symbols
    }
    for i, session in enumerate(sessions(params.session, params.start, params.n_days, params.session_minutes)):
        for symbol in params.symbols:
            rng = rng_for(params.seed, symbol, session, _TRUTH)
            state = states[symbol]
            if i and params.session != "24/7":  # overnight move between sessions
                on = rng.normal(0.0, dyn.annual_vol * np.sqrt(1 / 252) * 0.5)
                state = PathState(state.logp + on, state.regime, state.logv)
            truth, states[symbol] = simulate_truth(
                rng, session, dyn, params.trades_per_day, params.base_ms, year_s, state
            )
            yield symbol, session, truth


def vendor_day(
    params: SimParams, symbol: str, session: Session, truth: TruthDay, vendor: VendorConfig, quotes: bool = True
) -> VendorDay:
    """Observe one symbol-session through one vendor (trades, quotes and the faults injected)."""
    windows = fault_windows(rng_for(params.seed, symbol, session, _WINDOWS, vendor.name), session, vendor)
    trades, bad = observe_trades(
        rng_for(params.seed, symbol, session, _TRADES, vendor.name), truth, symbol, vendor, windows, params.tick_size
    )
    q = (
        observe_quotes(
            rng_for(params.seed, symbol, session, _QUOTES, vendor.name),
            truth,
            symbol,
            vendor,
            windows,
            params.tick_size,
        )
        if quotes
        else pl.DataFrame()
    )
    events = pl.concat([bad, window_events(symbol, vendor, windows)]).sort("ts", "kind")
    return VendorDay(trades, q, events)


def truth_frame(symbol: str, truth: TruthDay) -> pl.DataFrame:
    """The true path at the base resolution, as ``bronze.sim_truth`` rows."""
    return pl.DataFrame(
        {
            "ts": pl.Series(truth.grid_ns, dtype=pl.Int64).cast(NS),
            "symbol_id": pl.repeat(symbol, truth.grid_ns.shape[0], dtype=pl.String, eager=True),
            "price": truth.price,
            "regime": pl.Series(truth.regime, dtype=pl.Int8),
            "vol": truth.vol,
        }
    )


def options_frame(params: SimParams, symbol: str, session: Session, truth: TruthDay) -> pl.DataFrame:
    """One chain snapshot per symbol-session, taken mid-session from the true spot and vol."""
    at = truth.grid_ns.shape[0] // 2
    return option_chain(
        rng_for(params.seed, symbol, session, _OPTIONS),
        symbol,
        int(truth.grid_ns[at]),
        session.day,
        float(truth.price[at]),
        float(truth.vol[at]),
        params.dynamics.annual_vol,
        params.dynamics.rate,
    )


def _slices(df: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    for start in range(0, max(df.height, 1), rows):
        yield df.slice(start, rows)


def _chunks(params: SimParams, symbol: str, session: Session, truth: TruthDay) -> Iterator[Chunk]:
    tables = set(params.tables)
    if "sim_truth" in tables:
        yield Chunk(BRONZE_SIM_TRUTH, truth_frame(symbol, truth))
    events = []
    for vendor in params.vendors:
        day = vendor_day(params, symbol, session, truth, vendor, quotes="quotes" in tables)
        if "trades" in tables:
            for part in _slices(day.trades.drop("true_ts"), params.chunk_rows):
                yield Chunk(BRONZE_TRADES, part)
        if "quotes" in tables:
            for part in _slices(day.quotes, params.chunk_rows):
                yield Chunk(BRONZE_QUOTES, part)
        events.append(day.events)
    if "options_chain" in tables:
        yield Chunk(BRONZE_OPTIONS_CHAIN, options_frame(params, symbol, session, truth))
    if "sim_events" in tables:
        yield Chunk(BRONZE_SIM_EVENTS, pl.concat(events).sort("ts", "vendor", "kind"))


def batch_id(params: SimParams, symbol: str, session: Session) -> str:
    """Deterministic id of one symbol-session; independent of the other symbols and of chunking."""
    desc = params.model_dump_json(exclude={"symbols", "chunk_rows"})
    return text_batch_id(SOURCE, desc, symbol, session.day.isoformat())


def batches(params: SimParams, clock: Clock | None = None) -> Iterator[Batch]:
    """One batch per (symbol, session); the vendors' frames are built lazily as the engine reads."""
    for symbol, session, truth in simulate_days(params):
        yield Batch(
            SOURCE,
            f"simulator://{symbol}/{session.day.isoformat()}",
            batch_id(params, symbol, session),
            _chunks(params, symbol, session, truth),
        )
