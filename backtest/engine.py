"""The backtest engine: bars + signals + strategy settings -> equity curve, trades, kill events.

Event-driven (``backtest.loop``): every bar of every symbol is one event, in time order, with a
portfolio of cash and positions marked at the last close. Signals are target exposures (fraction
of NAV, the ``size`` the sizing formulas give) or target units; orders fill at the next tradable
open with fees, half-spread and ADV-participation slippage, and pass the NAV, ADV and intraday
drawdown guards. A run is identified by the hash of its inputs (data versions, settings, model
version); the hash of its outputs tells two runs on one machine apart (the golden run pins its
figures to 1e-9 relative: across machines, last-ulp differences in math libraries move the hash).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from backtest import loop
from backtest.events import Events, align_targets, build_events, held_sizes
from core.errors import ConfigError
from core.strategy import BacktestSettings
from core.timetypes import PL_TS

ENGINE_VERSION = "1"
SLIPPAGE_MODELS = {"none": loop.SLIP_NONE, "sqrt": loop.SLIP_SQRT, "linear": loop.SLIP_LINEAR}
KINDS = {loop.KIND_FILL: "fill", loop.KIND_ROLL: "roll", loop.KIND_KILL: "kill"}


@dataclass(frozen=True)
class BacktestResult:
    """What a run produced: per-timestamp equity, the trade list, and its identity."""

    run_id: str  # hash of the inputs
    result_hash: str  # hash of the outputs (equity and trades)
    equity: pl.DataFrame  # ts, day, nav, cash, gross, traded
    trades: pl.DataFrame  # ts, symbol_id, kind, qty, ref_price, fill_price, fee, spread_cost, slippage_cost
    final_positions: dict[str, float]
    settings: BacktestSettings
    n_events: int
    inputs: dict = field(default_factory=dict)

    @property
    def kills(self) -> pl.DataFrame:
        """The drawdown kill-switch events (ts, nav at the trigger in ref_price, session peak in fill_price)."""
        return self.trades.filter(pl.col("kind") == "kill")


def run_id_for(settings: BacktestSettings, data_versions: dict, model_version: str | None, target: str) -> str:
    """Hash what determines a run: data versions, settings, model version, target kind, engine version."""
    blob = json.dumps(
        {
            "engine": ENGINE_VERSION,
            "settings": settings.model_dump(mode="json"),
            "data": {str(k): str(v) for k, v in sorted(data_versions.items())},
            "model": model_version,
            "target": target,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def array_digest(*arrays: np.ndarray, names: tuple[str, ...] = ()) -> str:
    """Hash arrays (floats cut to 29 mantissa bits, so last-ulp differences do not move the hash)."""
    h = hashlib.sha256("\x1f".join(names).encode())
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f":  # keep 29 of 52 mantissa bits (~2e-9 relative); -0.0 -> 0.0
            a = (a.astype(np.float64) + 0.0).view(np.uint64) & np.uint64(~((1 << 23) - 1) & (2**64 - 1))
        h.update(str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


def run_events(
    events: Events,
    target: np.ndarray,
    settings: BacktestSettings,
    *,
    units: bool = False,
    multipliers: dict[str, float] | None = None,
    remark_on_roll: set[str] | frozenset[str] = frozenset(),
) -> tuple:
    """Run the compiled loop on prepared events; return its raw arrays (see ``backtest.loop``)."""
    c, g = settings.costs, settings.guards
    mult = np.array([float((multipliers or {}).get(s, 1.0)) for s in events.symbols])
    remark = np.array([s in remark_on_roll for s in events.symbols], dtype=np.bool_)
    return loop.run_loop(
        events.sym,
        events.day,
        events.open,
        events.close,
        events.tradable,
        target,
        events.adv,
        events.sigma,
        events.half_spread,
        events.roll,
        remark,
        mult,
        loop.MODE_UNITS if units else loop.MODE_NAV,
        c.fee_bps * 1e-4,
        SLIPPAGE_MODELS[c.slippage],
        c.slippage_k,
        c.roll_cost_bps * 1e-4,
        g.max_nav_frac,
        g.max_adv_share,
        g.max_intraday_drawdown,
        settings.initial_cash,
    )


@dataclass(frozen=True)
class Prepared:
    """Events and aligned targets of a job, reusable across settings that keep sessions and spreads."""

    events: Events
    target: np.ndarray
    target_kind: str
    multipliers: dict[str, float]
    remark_on_roll: frozenset[str]
    data_versions: dict
    model_version: str | None
    hold: int = 1  # signals each size is held for (``backtest.events.held_sizes``)


def prepare(
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    settings: BacktestSettings,
    *,
    target: str = "size",
    data_versions: dict | None = None,
    model_version: str | None = None,
    multipliers: dict[str, float] | None = None,
    futures_method: dict[str, str] | None = None,
    hold: int = 1,
) -> Prepared:
    """Build the events and align the signals (see ``run_backtest`` for the arguments)."""
    if target not in ("size", "units"):
        raise ConfigError(f"target column must be 'size' or 'units', got {target!r}")
    methods = futures_method or {}
    bad = {s: m for s, m in methods.items() if m not in ("none", "panama")}
    if bad:
        raise ConfigError(f"futures series {bad}: backtest P&L needs method 'panama' or 'none'")
    events = build_events(bars, settings.costs, settings.calendar)
    if len(events) == 0:
        raise ConfigError("no bars to backtest")
    return Prepared(
        events=events,
        target=align_targets(events, held_sizes(signals, hold, target), target),
        target_kind=target,
        multipliers=dict(multipliers or {}),
        remark_on_roll=frozenset(s for s, m in methods.items() if m == "none"),
        data_versions=dict(data_versions or {}),
        model_version=model_version,
        hold=hold,
    )


def run_prepared(prep: Prepared, settings: BacktestSettings) -> BacktestResult:
    """Run the loop on prepared events with ``settings`` (fees, slippage, guards may differ from prepare's)."""
    out = run_events(
        prep.events,
        prep.target,
        settings,
        units=prep.target_kind == "units",
        multipliers=prep.multipliers,
        remark_on_roll=prep.remark_on_roll,
    )
    nav, cash, gross, traded, trades, pos = out
    return assemble(
        prep.events,
        nav,
        cash,
        gross,
        traded,
        trades,
        pos,
        settings,
        prep.data_versions,
        prep.model_version,
        prep.target_kind if prep.hold == 1 else f"{prep.target_kind}/hold{prep.hold}",
    )


def run_backtest(
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    settings: BacktestSettings,
    *,
    target: str = "size",
    data_versions: dict | None = None,
    model_version: str | None = None,
    multipliers: dict[str, float] | None = None,
    futures_method: dict[str, str] | None = None,
    hold: int = 1,
) -> BacktestResult:
    """Backtest ``signals`` over ``bars`` with the strategy's costs and guards.

    ``target``: the signal column, ``size`` (signed fraction of NAV) or ``units`` (signed
    position). ``futures_method``: per continuous-futures symbol, its series method: ``panama``
    (marks continue on the back-adjusted prices) or ``none`` (the roll gap is removed in cash).
    The ``ratio`` method scales P&L at each roll and is refused. ``hold`` > 1: each size is held
    for that many signals of its symbol (``backtest.events.held_sizes``).
    """
    prep = prepare(
        bars,
        signals,
        settings,
        target=target,
        data_versions=data_versions,
        model_version=model_version,
        multipliers=multipliers,
        futures_method=futures_method,
        hold=hold,
    )
    return run_prepared(prep, settings)


def assemble(events, nav, cash, gross, traded, trades, pos, settings, data_versions, model_version, target):
    """Collapse per-event arrays to one equity row per timestamp and name the trades."""
    ts = events.ts
    last = np.flatnonzero(np.r_[ts[1:] != ts[:-1], True])  # last event of each timestamp
    traded_per_ts = np.add.reduceat(traded, np.r_[0, last[:-1] + 1])
    equity = pl.DataFrame(
        {
            "ts": ts[last],
            "day": events.day[last],
            "nav": nav[last],
            "cash": cash[last],
            "gross": gross[last],
            "traded": traded_per_ts,
        }
    ).with_columns(pl.col("ts").cast(PL_TS))
    ev = trades[:, loop.T_EVENT].astype(np.int64)
    sym = trades[:, loop.T_SYM].astype(np.int64)
    kind = trades[:, loop.T_KIND].astype(np.int64)
    names = pl.Series("symbol_id", [*events.symbols, "*"], dtype=pl.String)
    kinds = pl.Series("kind", [KINDS[k] for k in sorted(KINDS)], dtype=pl.String)
    trade_frame = pl.DataFrame(
        {
            "ts": ts[ev],
            "symbol_id": names.gather(np.where(sym < 0, len(events.symbols), sym)),
            "kind": kinds.gather(kind),
            "qty": trades[:, loop.T_QTY],
            "ref_price": trades[:, loop.T_REF],
            "fill_price": trades[:, loop.T_PX],
            "fee": trades[:, loop.T_FEE],
            "spread_cost": trades[:, loop.T_SPREAD],
            "slippage_cost": trades[:, loop.T_SLIP],
        }
    ).with_columns(pl.col("ts").cast(PL_TS))
    run_id = run_id_for(settings, data_versions or {}, model_version, target)
    digest = array_digest(
        ts[last], nav[last], cash[last], gross[last], traded_per_ts, ts[ev], trades, names=events.symbols
    )
    return BacktestResult(
        run_id=run_id,
        result_hash=digest,
        equity=equity,
        trades=trade_frame,
        final_positions={s: float(p) for s, p in zip(events.symbols, pos, strict=True) if p != 0.0},
        settings=settings,
        n_events=len(events),
        inputs={"data_versions": data_versions or {}, "model_version": model_version, "target": target},
    )
