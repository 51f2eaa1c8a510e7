"""Incremental ``tick_v2``: per-symbol state updated in O(1) per event, one feature row per symbol per second.

The featurizer sees events in the order ``feature_store.tick.events`` defines (ts, quotes before
trades, seq). Its clock is the event time: the watermark is the latest second any event (of any
symbol, in a session or not) falls in. When an event opens a later second, every earlier second is
due for every active symbol (a row even for a second without ticks, as the batch grid has), so a
row depends only on ticks at or before its end. ``flush`` closes the watermark's own second too.

A clock can close seconds too (``advance``, the live heartbeat): once the clock is past a second, no
event of it can still arrive on time, so every active symbol's rows up to it are closed even if no
event of any symbol came since; an event of a closed second arriving later is counted late and
dropped. The rows are the batch grid's rows up to that second (``tick_features(until_ns=...)``).

Due rows are produced without a burst: a symbol's own next event closes its due seconds first, and
every event also closes the due seconds of at most ``sweep`` other symbols (round robin), so no
event pays for all 500 symbols at a second boundary; ``drain`` closes everything due (the service
calls it when the input pauses). Window sums live in rings with compensated (Neumaier) running
sums, so closing a second costs O(features), not O(window), and stays within an ulp or two of the
batch path. Formulas come from ``plan.Plan`` (the registry's kinds).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

from core.timetypes import NS_PER_S
from feature_store.registry import FeatureSet
from feature_store.streaming.plan import AGGS, Plan
from feature_store.tick.definitions import TICK_V2
from feature_store.tick.events import DEFAULT_CALENDAR
from lakehouse import calendars

N_AGGS = len(AGGS)
R2, NZ = AGGS.index("r2"), AGGS.index("nz_r")


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


class SymbolState:
    """One symbol in one session: the open second's accumulators, the book, rings and window sums."""

    __slots__ = (
        "symbol", "open", "close", "started", "next_sec", "idx", "acc_sec", "acc", "price", "prev_price",
        "tick", "bid", "bid_size", "ask", "ask_size", "prev_log_mid", "lp", "rings", "S", "C", "V", "queued",
    )  # fmt: skip

    def __init__(self, symbol: str, session: tuple[int, int], plan: Plan) -> None:
        self.symbol, (self.open, self.close) = symbol, session
        self.started, self.next_sec, self.idx, self.acc_sec, self.queued = False, 0, 0, -1, False
        self.acc = [0.0] * N_AGGS
        self.price: float | None = None
        self.prev_price: float | None = None
        self.tick = 0.0
        self.bid: float | None = None
        self.bid_size: float | None = None
        self.ask: float | None = None
        self.ask_size: float | None = None
        self.prev_log_mid: float | None = None
        self.lp = [0.0] * plan.lp_len
        self.rings = [[0.0] * plan.ring_len for _ in plan.ring_aggs]
        self.S = [0.0] * len(plan.sums)  # compensated window sums: value = S + C
        self.C = [0.0] * len(plan.sums)
        self.V = [0.0] * len(plan.sums)

    def touch(self, sec: int) -> list[float]:
        """The accumulators of second ``sec`` (reset when the event opens a new second)."""
        if self.acc_sec != sec:
            self.acc_sec = sec
            self.acc = [0.0] * N_AGGS
        return self.acc


class TickFeaturizer:
    """Feed ordered trades and quotes; take finished rows ``(symbol_id, ts_ns, values)`` from ``out``."""

    def __init__(
        self,
        feature_set: FeatureSet = TICK_V2,
        calendar_of: Mapping[str, str] | str = DEFAULT_CALENDAR,
        sessions: SessionBook | None = None,
        sweep: int = 1,
    ) -> None:
        self.plan = Plan(feature_set)
        self.calendar_of = calendar_of
        self.sessions = sessions or SessionBook()
        self.sweep = sweep
        self.symbols: dict[str, SymbolState] = {}
        self.active: dict[str, SymbolState] = {}
        self.due: deque[SymbolState] = deque()
        self.target = -1  # every active symbol owes its rows up to this second
        self.watermark = -1
        self.out: list[tuple[str, int, list[float]]] = []
        self.counts = {"trades": 0, "quotes": 0, "out_of_session": 0, "late": 0, "rejected": 0, "rows": 0}

    def state(self) -> dict:
        """The evolving state (per-symbol books and windows, the clock), picklable: what a checkpoint keeps.

        Rows already in ``out`` are not part of it: take them first.
        """
        keys = ("symbols", "active", "due", "target", "watermark")
        return {k: getattr(self, k) for k in keys}

    def restore(self, state: dict) -> None:
        """Continue from ``state()`` of a featurizer of the same feature set (this one keeps its plan and calendars)."""
        self.symbols, self.active, self.due = state["symbols"], state["active"], state["due"]
        self.target, self.watermark = state["target"], state["watermark"]

    def _calendar(self, symbol: str) -> str:
        cal = self.calendar_of
        return cal if isinstance(cal, str) else cal.get(symbol, DEFAULT_CALENDAR)

    def _state(self, symbol: str, t: int, sec: int) -> SymbolState | None:
        """Advance the clock to ``sec``; the symbol's state for an event at ``t``, or None to drop it."""
        if sec > self.watermark:
            if self.watermark >= 0:
                self.target = sec - NS_PER_S
                self._queue_active()
            self.watermark = sec
        elif sec < self.watermark:
            self.counts["late"] += 1
            return None
        if self.due:
            self._sweep()
        st = self.symbols.get(symbol)
        if st is not None and st.started and st.next_sec <= self.target:
            self._close(st)
        if st is None or t > st.close or t < st.open:
            session = self.sessions.find(self._calendar(symbol), t)
            if session is None:
                self.counts["out_of_session"] += 1
                return None
            if st is None or session[0] != st.open:
                st = self.symbols[symbol] = SymbolState(symbol, session, self.plan)
        return st

    def on_quote(self, symbol: str, t: int, bid, bid_size, ask, ask_size) -> None:
        """Apply one top-of-book update (a side given as None is unchanged; a bad price drops the update)."""
        if (bid is not None and not 0.0 < bid < math.inf) or (ask is not None and not 0.0 < ask < math.inf):
            self.counts["rejected"] += 1
            return
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
        """Apply one trade print (a non-positive or non-finite price, or a negative size, is counted and dropped)."""
        if not (0.0 < price < math.inf and 0.0 <= size < math.inf):
            self.counts["rejected"] += 1
            return
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

    def _queue_active(self) -> None:
        due = self.due
        for st in self.active.values():
            if not st.queued:
                st.queued = True
                due.append(st)

    def _sweep(self) -> None:
        """Close a few due symbols: ``sweep`` plus 1 per 64 waiting, so a backlog drains geometrically."""
        due = self.due
        for _ in range(self.sweep + (len(due) >> 6)):
            if not due:
                return
            st = due.popleft()
            st.queued = False
            self._close(st)

    def advance(self, now_ns: int) -> None:
        """The clock reads ``now_ns``: close every second that ended before it, quiet symbols included.

        Second s holds events with t in (s - 1 s, s]; the second ``now_ns`` falls in stays open. A
        live service calls this on a heartbeat with the wall clock minus its allowed lateness, so a
        symbol with no tick still publishes its seconds on time instead of at its next tick.
        """
        sec = -(-now_ns // NS_PER_S) * NS_PER_S
        if sec - NS_PER_S > self.target:
            self.target = sec - NS_PER_S
            self._queue_active()
        self.watermark = max(self.watermark, sec)
        self.drain()

    def drain(self) -> None:
        """Close every due second of every symbol now."""
        due = self.due
        while due:
            st = due.popleft()
            st.queued = False
            self._close(st)

    def flush(self) -> None:
        """Close the watermark's second too (the input is over)."""
        if self.watermark >= 0:
            self.target = self.watermark
            self._queue_active()
            self.drain()

    def _close(self, st: SymbolState) -> None:
        """Emit ``st``'s rows up to the due second (capped at its session close)."""
        end = min(self.target, st.close)
        out, symbol = self.out, st.symbol
        while st.next_sec <= end:
            out.append((symbol, st.next_sec, self._row(st, st.next_sec)))
            st.next_sec += NS_PER_S
        if st.next_sec > st.close and self.active.get(symbol) is st:
            del self.active[symbol]

    def _row(self, st: SymbolState, sec: int) -> list[float]:
        plan, i = self.plan, st.idx
        xs = st.acc if st.acc_sec == sec else [0.0] * N_AGGS
        bid, ask = st.bid, st.ask
        if bid is not None and ask is not None and bid <= ask:
            valid, mid = True, (bid + ask) / 2
        else:
            valid, mid = False, 0.0
        log_mid = math.log(mid) if valid else None
        prev = st.prev_log_mid
        r = log_mid - prev if (i > 0 and log_mid is not None and prev is not None) else 0.0
        st.prev_log_mid = log_mid
        xs[R2], xs[NZ] = r * r, (1.0 if r != 0 else 0.0)
        n, rings, S, C, V = plan.ring_len, st.rings, st.S, st.C, st.V
        for k, (a, w, ri) in enumerate(plan.sums):  # Neumaier: add the new value, remove the one leaving
            s, c = S[k], C[k]
            if i >= w:
                y = -rings[ri][(i - w) % n]
                if y != 0.0:
                    t = s + y
                    c += (s - t) + y if abs(s) >= abs(y) else (y - t) + s
                    s = t
            x = xs[a]
            if x != 0.0:
                t = s + x
                c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
                s = t
            S[k], C[k], V[k] = s, c, s + c
        pos = i % n
        for ri, a in enumerate(plan.ring_aggs):
            rings[ri][pos] = xs[a]
        lp_now = st.lp[i % plan.lp_len] = math.log(cast(float, st.price))  # set by the trade that started the rows
        values = [f(V, st, i, sec, lp_now, valid, mid) for f in plan.formulas]
        st.idx += 1
        self.counts["rows"] += 1
        return values
