"""Online view: the latest feature row per (feature set, symbol), for the API's /features and /score.

Fed from the FEATURES stream (``follow``: the last stored update per subject first, then live ones)
or from gold rows (``load_frame``); ``latest`` answers with the row known at or before ``as_of``
when one is given, so a delayed-data client never sees a row from its future.

    view = OnlineView()
    await view.follow(nc, tf="1s")           # keeps itself current
    row = view.latest("BAC:US", "tick_v2")   # {"symbol_id", "ts", "known_at", "feature_set", "seq", "values": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from feature_store.messages import FeatureUpdate, decode, features_subject
from feature_store.registry import get


@dataclass(frozen=True)
class OnlineRow:
    """One symbol's latest features (values by name, in the registry's order)."""

    symbol_id: str
    feature_set: str
    tf: str
    ts: int
    known_at: int
    seq: int
    values: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "symbol_id": self.symbol_id,
            "feature_set": self.feature_set,
            "tf": self.tf,
            "ts": self.ts,
            "known_at": self.known_at,
            "seq": self.seq,
            "values": dict(self.values),
        }


class OnlineView:
    """Latest row per (feature_set, symbol); keeps ``history`` earlier rows for as-of reads."""

    def __init__(self, history: int = 600) -> None:
        self.history = history
        self._rows: dict[tuple[str, str], list[OnlineRow]] = {}
        self._sub = None

    def update(self, u: FeatureUpdate) -> None:
        """Take one FeatureUpdate (an older or repeated ts than the latest is ignored)."""
        names = get(u.feature_set).names
        if len(names) != len(u.values):
            return
        row = OnlineRow(
            u.symbol_id, u.feature_set, u.tf, u.ts, u.known_at, u.seq, dict(zip(names, u.values, strict=True))
        )
        rows = self._rows.setdefault((u.feature_set, u.symbol_id), [])
        if rows and rows[-1].ts >= u.ts:
            return
        rows.append(row)
        if len(rows) > self.history:
            del rows[: len(rows) - self.history]

    def load_frame(self, features: pl.DataFrame) -> int:
        """Take gold feature rows (symbol_id, tf, ts, known_at, feature_set, feature columns); return rows taken."""
        n = 0
        for (fs_name,), part in features.sort("ts").partition_by("feature_set", as_dict=True).items():
            names = get(fs_name).names
            cols = part.select(
                "symbol_id", "tf", pl.col("ts").dt.epoch("ns"), pl.col("known_at").dt.epoch("ns"), *names
            )
            for r in cols.iter_rows():
                sym, tf, ts, known = r[:4]
                values = tuple(float("nan") if v is None else float(v) for v in r[4:])
                self.update(FeatureUpdate(sym, tf, ts, known, fs_name, values, ts // 1_000_000_000))
                n += 1
        return n

    def latest(self, symbol_id: str, feature_set: str, as_of: int | None = None) -> OnlineRow | None:
        """The newest row of ``symbol_id`` (known at or before ``as_of`` ns, if given), or None."""
        rows = self._rows.get((feature_set, symbol_id), [])
        for row in reversed(rows):
            if as_of is None or row.known_at <= as_of:
                return row
        return None

    def symbols(self, feature_set: str) -> list[str]:
        """Symbols with at least one row of ``feature_set``."""
        return sorted(s for fs, s in self._rows if fs == feature_set)

    def frame(self, feature_set: str) -> pl.DataFrame:
        """The latest row of every symbol as a frame (one column per feature)."""
        rows = [self.latest(s, feature_set) for s in self.symbols(feature_set)]
        return pl.DataFrame(
            [{"symbol_id": r.symbol_id, "ts": r.ts, "known_at": r.known_at, **r.values} for r in rows if r]
        )

    async def follow(self, nc, tf: str = "1s") -> None:
        """Load the last stored update per symbol from FEATURES, then keep taking new ones (core subscription)."""
        from feature_store.streaming.service import last_published

        async def on_msg(msg) -> None:
            try:
                self.update(decode(msg.data))
            except Exception:  # noqa: BLE001 - a bad message must not stop the view; the scorer dead-letters it
                pass

        pattern = features_subject(tf, "*").rsplit(".", 1)[0] + ".>"
        self._sub = await nc.subscribe(pattern, cb=on_msg)
        for update in (await last_published(nc.jetstream(), tf)).values():
            self.update(update)

    async def close(self) -> None:
        """Stop following the stream."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
