"""What the incremental featurizer needs to compute a feature set: sums, rings and one formula per feature.

``Plan(feature_set)`` reads the registry: each feature's ``kind`` and windows decide which trailing
(aggregate, window) sums the state keeps and which closure turns them into the feature's value.
The formulas mirror ``feature_store.tick.batch._feature`` operation for operation (same order of
floating-point operations), which is what lets the parity test hold them to 1e-9.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core.timetypes import NS_PER_S
from feature_store.registry import FeatureSet
from feature_store.tick.batch import VAR_SNAP

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
# f(V, st, i, sec, lp_now, valid, mid) -> value; V = the current window sums in plan order
Formula = Callable[..., float]


class Plan:
    """Sums ``(aggregate index, window)`` in a fixed order, the aggregates that need rings, formulas."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        kinds = [(f.param["kind"], f.param) for f in feature_set.features]
        unknown = sorted({k for k, _ in kinds} - set(NEEDS) - set(_SIMPLE) - {"ret"})
        if unknown:
            raise ValueError(f"feature set {feature_set.name}: no incremental formula for kinds {unknown}")
        pairs = sorted({(A[a], p["w"]) for kind, p in kinds for a in NEEDS.get(kind, ())})
        self.ring_aggs = sorted({a for a, _ in pairs})
        ring_of = {a: r for r, a in enumerate(self.ring_aggs)}
        self.sums = [(a, w, ring_of[a]) for a, w in pairs]  # (aggregate index, window, ring index)
        self.index = {(AGGS[a], w): k for k, (a, w, _) in enumerate(self.sums)}
        self.ring_len = max([w for _, w in pairs], default=1)
        self.lp_len = max([p["n"] for kind, p in kinds if kind == "ret"], default=0) + 1
        self.block_size = next((p["block_size"] for _, p in kinds if "block_size" in p), math.inf)
        self.formulas: list[Formula] = [self._formula(kind, p) for kind, p in kinds]

    def _formula(self, kind: str, p: dict) -> Formula:  # noqa: C901 - one closure per kind
        if kind == "ret":
            n, L = p["n"], self.lp_len
            return lambda V, st, i, sec, lpn, valid, mid: lpn - st.lp[(i - (n if i >= n else i)) % L]
        if kind in _SIMPLE:
            return _SIMPLE[kind]
        w = p["w"]
        k = {a: self.index[(a, w)] for a in NEEDS[kind]}
        if kind in ("tick_imb", "quote_imb", "block_share"):
            num, vol = (
                k["s_tick" if kind == "tick_imb" else "s_quote" if kind == "quote_imb" else "block_vol"],
                k["volume"],
            )
            return lambda V, *_: V[num] / V[vol] if V[vol] > 0 else 0.0
        if kind == "log_size_mean":
            s1, n = k["log_sum"], k["n_sized"]
            return lambda V, *_: V[s1] / V[n] if V[n] > 0 else 0.0
        if kind == "log_size_std":
            s1, s2, n = k["log_sum"], k["log2_sum"], k["n_sized"]
            return lambda V, *_: _std(V[s1], V[s2], V[n])
        if kind in ("trade_rate", "quote_rate"):
            c = k["n_trades" if kind == "trade_rate" else "n_quotes"]
            return lambda V, st, i, *_: V[c] / (i + 1 if i + 1 < w else w)
        if kind == "log_volume":
            vol = k["volume"]
            return lambda V, *_: math.log1p(V[vol])
        if kind == "mid_rv":
            r2, nz, year = k["r2"], k["nz_r"], p["year_seconds"]
            return lambda V, st, i, *_: math.sqrt(V[r2] / (i + 1 if i + 1 < w else w) * year) if V[nz] > 0 else 0.0
        raise ValueError(f"unknown tick feature kind {kind!r}")


def _std(s1: float, s2: float, n: float) -> float:
    mean = s1 / n if n > 0 else 0.0
    var = (s2 / n if n > 0 else 0.0) - mean * mean
    return math.sqrt(var) if var > VAR_SNAP * (1 + mean * mean) else 0.0


def _spread(V, st, i, sec, lpn, valid, mid) -> float:
    return 1e4 * (st.ask - st.bid) / mid if valid else 0.0


def _micro(V, st, i, sec, lpn, valid, mid) -> float:
    if not valid:
        return 0.0
    bs, az = st.bid_size, st.ask_size
    depth = bs + az
    return 1e4 * ((st.bid * az + st.ask * bs) / depth / mid - 1.0) if depth > 0 else 0.0


def _book(V, st, i, sec, lpn, valid, mid) -> float:
    if not valid:
        return 0.0
    depth = st.bid_size + st.ask_size
    return (st.bid_size - st.ask_size) / depth if depth > 0 else 0.0


_SIMPLE: dict[str, Formula] = {
    "spread_bps": _spread,
    "microprice_bps": _micro,
    "book_imbalance": _book,
    "secs_since_open": lambda V, st, i, sec, *_: (sec - st.open) / NS_PER_S,
    "secs_to_close": lambda V, st, i, sec, *_: (st.close - sec) / NS_PER_S,
}
