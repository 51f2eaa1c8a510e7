"""Incremental ``tick_v2``: per-symbol state updated in O(1) per event, one feature row per symbol per second.

The featurizer sees events in the order ``feature_store.tick.events`` defines (ts, quotes before
trades, seq). Its clock is the event time: the watermark is the latest second any event (of any
symbol, in a session or not) falls in. When an event opens a later second, every earlier second is
closed for every active symbol (a row even for a second without ticks, as the batch grid has), so a
row depends only on ticks at or before its end. ``flush`` closes the watermark's own second.

Per second and symbol, trailing window sums are kept in rings with compensated (Neumaier) running
sums, so closing a second costs O(features), not O(window), and the sums stay within an ulp or two
of the batch path's. Feature formulas dispatch on the registry's ``kind`` like the batch path does.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from core.timetypes import NS_PER_S
from feature_store.registry import FeatureSet
from feature_store.tick.batch import VAR_SNAP
from feature_store.tick.definitions import TICK_V2
from feature_store.tick.events import DEFAULT_CALENDAR, second_end_ns
from lakehouse import calendars

AGGS = (
    "n_trades",
    "volume",
    "s_tick",
    "s_quote",
    "n_sized",
    "log_sum",
    "log2_sum",
    "block_vol",
    "n_quotes",
    "r2",
    "nz_r",
)
A = {name: i for i, name in enumerate(AGGS)}
NEEDS = {
    "tick_imb": ("s_tick", "volume"),
    "quote_imb": ("s_quote", "volume"),
    "log_size_mean": ("log_sum", "n_sized"),
    "log_size_std": ("log_sum", "log2_sum", "n_sized"),
    "block_share": ("block_vol", "volume"),
    "trade_rate": ("n_trades",),
    "quote_rate": ("n_quotes",),
    "log_volume": ("volume",),
    "mid_rv": ("r2", "nz_r"),
}


class SessionBook:
    """Exchange sessions per calendar, loaded a year at a time: ``find(cal, t)`` -> (open, close) or None."""

    def __init__(self) -> None:
        self._opens: dict[str, list[int]] = {}
        self._closes: dict[str, list[int]] = {}
        self._years: dict[str, set[int]] = {}

    def find(self, calendar: str, t: int) -> tuple[int, int] | None:
        year = datetime.fromtimestamp(t / NS_PER_S, UTC).year
        if year not in self._years.setdefault(calendar, set()):
            self._load(calendar, year)
        opens, closes = self._opens[calendar], self._closes[calendar]
        i = bisect.bisect_right(opens, t) - 1
        return (opens[i], closes[i]) if i >= 0 and t <= closes[i] else None

    def _load(self, calendar: str, year: int) -> None:
        frame = calendars.sessions(
            calendar, datetime(year - 1, 12, 20, tzinfo=UTC), datetime(year + 1, 1, 10, tzinfo=UTC)
        )
        pairs = set(zip(self._opens.get(calendar, []), self._closes.get(calendar, []), strict=True))
        pairs |= set(zip(frame["open"].dt.epoch("ns").to_list(), frame["close"].dt.epoch("ns").to_list(), strict=True))
        ordered = sorted(pairs)
        self._opens[calendar] = [o for o, _ in ordered]
        self._closes[calendar] = [c for _, c in ordered]
        self._years[calendar].add(year)


class WindowSum:
    """A trailing sum over the last ``w`` values of a ring, Neumaier-compensated."""

    __slots__ = ("w", "s", "c")

    def __init__(self, w: int) -> None:
        self.w, self.s, self.c = w, 0.0, 0.0

    def add(self, x: float) -> None:
        s = self.s
        t = s + x
        self.c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
        self.s = t

    @property
    def value(self) -> float:
        return self.s + self.c


class SymbolState:
    """One symbol in one session: the open second's accumulators, the book, rings and window sums."""

    __slots__ = (
        "symbol", "open", "close", "started", "next_sec", "idx", "acc_sec", "acc", "price", "prev_price",
        "tick", "bid", "bid_size", "ask", "ask_size", "prev_log_mid", "lp", "rings", "sums",
    )  # fmt: skip

    def __init__(self, symbol: str, session: tuple[int, int], plan: Plan) -> None:
        self.symbol, (self.open, self.close) = symbol, session
        self.started, self.next_sec, self.idx, self.acc_sec = False, 0, 0, -1
        self.acc = [0.0] * len(AGGS)
        self.price = self.prev_price = None
        self.tick = 0.0
        self.bid = self.bid_size = self.ask = self.ask_size = None
        self.prev_log_mid = None
        self.lp = [0.0] * plan.lp_len
        self.rings = {a: [0.0] * plan.ring_len for a in plan.window_aggs}
        self.sums = {(a, w): WindowSum(w) for a, w in plan.sums}

    def touch(self, sec: int) -> list[float]:
        """The accumulators of second ``sec`` (reset when the event opens a new second)."""
        if self.acc_sec != sec:
            self.acc_sec = sec
            self.acc = [0.0] * len(AGGS)
        return self.acc


class Plan:
    """What a feature set needs from the state: ring lengths, (aggregate, window) sums, formulas."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self.kinds = [(f.param["kind"], f.param) for f in feature_set.features]
        sums = {(a, p["w"]) for kind, p in self.kinds for a in NEEDS.get(kind, ())}
        self.sums = sorted(sums)
        self.window_aggs = sorted({a for a, _ in sums})
        self.ring_len = max([w for _, w in sums], default=1)
        self.lp_len = max([p["n"] for kind, p in self.kinds if kind == "ret"], default=0) + 1
        self.block_size = next((p["block_size"] for _, p in self.kinds if "block_size" in p), math.inf)


class TickFeaturizer:
    """Feed ordered trades and quotes; take finished rows ``(symbol_id, ts_ns, values)`` from ``out``."""

    def __init__(
        self,
        feature_set: FeatureSet = TICK_V2,
        calendar_of: Mapping[str, str] | str = DEFAULT_CALENDAR,
        sessions: SessionBook | None = None,
    ) -> None:
        self.plan = Plan(feature_set)
        self.calendar_of = calendar_of
        self.sessions = sessions or SessionBook()
        self.symbols: dict[str, SymbolState] = {}
        self.active: dict[str, SymbolState] = {}
        self.watermark = -1
        self.out: list[tuple[str, int, list[float]]] = []
        self.counts = {"trades": 0, "quotes": 0, "out_of_session": 0, "late": 0, "rows": 0}

    def _calendar(self, symbol: str) -> str:
        cal = self.calendar_of
        return cal if isinstance(cal, str) else cal.get(symbol, DEFAULT_CALENDAR)

    def _state(self, symbol: str, t: int, sec: int) -> SymbolState | None:
        """Advance the clock to ``sec``; the symbol's state for an event at ``t``, or None to drop it."""
        if sec > self.watermark:
            if self.watermark >= 0:
                self.close_until(sec - NS_PER_S)
            self.watermark = sec
        elif sec < self.watermark:
            self.counts["late"] += 1
            return None
        st = self.symbols.get(symbol)
        if st is None or t > st.close or t < st.open:
            session = self.sessions.find(self._calendar(symbol), t)
            if session is None:
                self.counts["out_of_session"] += 1
                return None
            if st is None or session[0] != st.open:
                st = self.symbols[symbol] = SymbolState(symbol, session, self.plan)
        return st

    def on_quote(self, symbol: str, t: int, bid, bid_size, ask, ask_size) -> None:
        """Apply one top-of-book update (a side given as None is unchanged)."""
        sec = -(-t // NS_PER_S) * NS_PER_S
        st = self._state(symbol, t, sec)
        if st is None:
            return
        self.counts["quotes"] += 1
        if bid is not None:
            st.bid, st.bid_size = bid, bid_size or 0.0
        if ask is not None:
            st.ask, st.ask_size = ask, ask_size or 0.0
        st.touch(sec)[8] += 1.0

    def on_trade(self, symbol: str, t: int, price: float, size: float) -> None:
        """Apply one trade print."""
        sec = -(-t // NS_PER_S) * NS_PER_S
        st = self._state(symbol, t, sec)
        if st is None:
            return
        self.counts["trades"] += 1
        prev = st.prev_price
        if prev is not None and price != prev:
            st.tick = 1.0 if price > prev else -1.0
        st.prev_price = st.price = price
        quote = st.tick
        bid, ask = st.bid, st.ask
        if bid is not None and ask is not None and bid <= ask:
            mid = (bid + ask) / 2
            if price > mid:
                quote = 1.0
            elif price < mid:
                quote = -1.0
        acc = st.touch(sec)
        acc[0] += 1.0
        acc[1] += size
        acc[2] += st.tick * size
        acc[3] += quote * size
        if size > 0:
            ls = math.log(size)
            acc[4] += 1.0
            acc[5] += ls
            acc[6] += ls * ls
        if size >= self.plan.block_size:
            acc[7] += size
        if not st.started:
            st.started, st.next_sec = True, sec
            self.active[symbol] = st

    def flush(self) -> None:
        """Close the watermark's second too (end of a replay)."""
        if self.watermark >= 0:
            self.close_until(self.watermark)

    def close_until(self, last_sec: int) -> None:
        """Emit every active symbol's rows for seconds up to ``last_sec`` (capped at its session close)."""
        done = []
        for symbol, st in self.active.items():
            end = min(last_sec, st.close)
            while st.next_sec <= end:
                self.out.append((symbol, st.next_sec, self._row(st, st.next_sec)))
                st.next_sec += NS_PER_S
            if st.next_sec > st.close:
                done.append(symbol)
        for symbol in done:
            del self.active[symbol]

    def _row(self, st: SymbolState, sec: int) -> list[float]:
        plan, i = self.plan, st.idx
        acc = st.acc if st.acc_sec == sec else [0.0] * len(AGGS)
        bid, ask, bs, az = st.bid, st.ask, st.bid_size, st.ask_size
        valid = bid is not None and ask is not None and bid <= ask
        mid = (bid + ask) / 2 if valid else 0.0
        log_mid = math.log(mid) if valid else None
        prev = st.prev_log_mid
        r = log_mid - prev if (i > 0 and log_mid is not None and prev is not None) else 0.0
        st.prev_log_mid = log_mid
        acc[A["r2"]], acc[A["nz_r"]] = r * r, 1.0 if r != 0 else 0.0
        rings, n = st.rings, plan.ring_len
        for (a, w), ws in st.sums.items():  # the value leaving the window is read before its slot is reused
            if i >= w:
                ws.add(-rings[a][(i - w) % n])
            ws.add(acc[A[a]])
        for a, ring in rings.items():
            ring[i % n] = acc[A[a]]
        lp = st.lp
        lp_now = lp[i % plan.lp_len] = math.log(st.price)
        values = []
        for kind, p in plan.kinds:
            values.append(self._value(kind, p, st, i, lp_now, lp, valid, mid, bs, az, sec))
        st.idx += 1
        self.counts["rows"] += 1
        return values

    def _value(self, kind, p, st, i, lp_now, lp, valid, mid, bs, az, sec) -> float:  # noqa: C901 - one formula per kind
        sums = st.sums
        if kind == "ret":
            return lp_now - lp[(i - min(p["n"], i)) % self.plan.lp_len]
        w = p.get("w")
        if kind in ("tick_imb", "quote_imb"):
            vol = sums[("volume", w)].value
            return sums[("s_tick" if kind == "tick_imb" else "s_quote", w)].value / vol if vol > 0 else 0.0
        if kind in ("log_size_mean", "log_size_std"):
            n = sums[("n_sized", w)].value
            mean = sums[("log_sum", w)].value / n if n > 0 else 0.0
            if kind == "log_size_mean":
                return mean
            var = (sums[("log2_sum", w)].value / n if n > 0 else 0.0) - mean * mean
            return math.sqrt(var) if var > VAR_SNAP * (1 + mean * mean) else 0.0
        if kind == "block_share":
            vol = sums[("volume", w)].value
            return sums[("block_vol", w)].value / vol if vol > 0 else 0.0
        if kind in ("trade_rate", "quote_rate"):
            return sums[("n_trades" if kind == "trade_rate" else "n_quotes", w)].value / min(i + 1, w)
        if kind == "log_volume":
            return math.log1p(sums[("volume", w)].value)
        if kind == "spread_bps":
            return 1e4 * (st.ask - st.bid) / mid if valid else 0.0
        if kind in ("microprice_bps", "book_imbalance"):
            depth = bs + az if valid else 0.0
            if not depth > 0:
                return 0.0
            if kind == "book_imbalance":
                return (bs - az) / depth
            return 1e4 * ((st.bid * az + st.ask * bs) / depth / mid - 1.0)
        if kind == "mid_rv":
            if not sums[("nz_r", w)].value > 0:
                return 0.0
            return math.sqrt(sums[("r2", w)].value / min(i + 1, w) * p["year_seconds"])
        if kind == "secs_since_open":
            return (sec - st.open) / NS_PER_S
        if kind == "secs_to_close":
            return (st.close - sec) / NS_PER_S
        raise ValueError(f"unknown tick feature kind {kind!r}")


def second_of(t: int) -> int:
    """The second (end, ns) an event at ``t`` belongs to."""
    return second_end_ns(t)
