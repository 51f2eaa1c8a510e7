"""The pandas baseline of the reconcile benchmark: the same reconciliation, written in plain pandas.

It follows ``lakehouse.reconcile`` step by step (bars.build_bars, then consensus.consensus without
a print screen) the way a pandas user would write it: boolean masks and ``searchsorted`` for the
sessions, sort + ``groupby().agg`` for the bars, ``merge_asof`` for carried bars, ``transform`` for
per-slot flags and ``groupby().apply`` for the weighted medians. One calendar for every symbol
(the benchmark's 24/7 one); no arrival times (known_at = bar end + the used vendors' latency).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIELDS = ["open", "high", "low", "close"]
SLOT = ["symbol_id", "ts"]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Return the lower weighted median (nulls and non-positive weights ignored), NaN when none is left."""
    keep = ~np.isnan(values) & (weights > 0)
    if not keep.any():
        return np.nan
    order = np.argsort(values[keep], kind="stable")
    v, w = values[keep][order], weights[keep][order]
    return v[np.searchsorted(np.cumsum(w), w.sum() * (0.5 - 1e-12))]


def capped(w: np.ndarray, max_share: float) -> np.ndarray:
    """No source above ``max_share`` of the first-pass weight: w <= r * (sum of the others)."""
    others = w.sum() - w
    return np.where(others > 0, np.minimum(w, max_share / (1 - max_share) * others), w)


def source_bars(ticks: pd.DataFrame, opens: np.ndarray, closes: np.ndarray, tf_ns: int) -> pd.DataFrame:
    """Per-source bars of ``tf_ns`` aligned on session opens (sessions ``[open, close]``, sorted)."""
    ts = ticks["ts"].to_numpy()
    i = np.searchsorted(opens, ts, side="right") - 1
    inside = (i >= 0) & (ts <= closes[np.clip(i, 0, None)])
    t = ticks[inside].copy()
    open_ns, close_ns = opens[i[inside]], closes[i[inside]]
    n_bars = (close_ns - open_ns + tf_ns - 1) // tf_ns
    idx = np.minimum((t["ts"].to_numpy() - open_ns) // tf_ns, n_bars - 1)
    t["bar"] = np.minimum(open_ns + (idx + 1) * tf_ns, close_ns)
    t["pv"] = t["price"] * t["size"]
    t = t.sort_values(["source", "symbol_id", "bar", "ts"], kind="stable")
    bars = (
        t.groupby(["source", "symbol_id", "bar"], sort=False)
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
            pv=("pv", "sum"),
            n_trades=("price", "size"),
            last_ts=("ts", "max"),
        )
        .reset_index()
    )
    bars["vwap"] = (bars["pv"] / bars["volume"]).where(bars["volume"] > 0)
    return bars.rename(columns={"bar": "ts"}).drop(columns="pv")


def candidates(
    bars: pd.DataFrame, tf_ns: int, max_delay_bars: int = 60, stale_after: float = 1.0, frozen_trades: int = 5
) -> pd.DataFrame:
    """Each source's contribution per slot: its bar, or its last one carried flat, with freshness."""
    slots = bars[SLOT].drop_duplicates()
    grid = slots.merge(bars[["symbol_id", "source"]].drop_duplicates(), on="symbol_id").sort_values("ts")
    src = bars.rename(columns={"ts": "bar_ts"}).sort_values("bar_ts")
    c = pd.merge_asof(
        grid,
        src,
        left_on="ts",
        right_on="bar_ts",
        by=["symbol_id", "source"],
        direction="backward",
        tolerance=tf_ns * max_delay_bars,
    )
    c = c[c["bar_ts"].notna()].copy()
    carried = c["bar_ts"] != c["ts"]
    for f in ("open", "high", "low"):
        c.loc[carried, f] = c.loc[carried, "close"]
    c.loc[carried, ["volume", "n_trades"]] = 0
    c.loc[carried, "vwap"] = np.nan
    c["fresh"] = (c["ts"] - c["last_ts"]) <= int(tf_ns * stale_after)
    flat_many = (c["high"] == c["low"]) & (c["n_trades"] >= frozen_trades)
    c["_moving"] = c["fresh"] & (c["high"] > c["low"])
    moving = c.groupby(SLOT)["_moving"].transform("any")
    c["fresh"] = c["fresh"] & ~(flat_many & moving)
    c["slot_stale"] = ~c.groupby(SLOT)["fresh"].transform("any")
    return c[c["fresh"] | c["slot_stale"]].drop(columns="_moving")


def consensus(
    bars: pd.DataFrame,
    weights: pd.DataFrame,
    tf_ns: int,
    k: float = 6.0,
    floor_bps: float = 0.05,
    max_share: float = 0.45,
) -> pd.DataFrame:
    """One consensus bar per slot: weighted medians without the outlying contributions."""
    c = candidates(bars, tf_ns).merge(weights, on=["source", "symbol_id"], how="left")
    c["w"] = c["w"].fillna(c.groupby("symbol_id")["w"].transform("median")).fillna(1.0).clip(lower=1e-9)
    c["latency_ms"] = c["latency_ms"].fillna(c.groupby("symbol_id")["latency_ms"].transform("median")).fillna(0.0)
    long = c.melt(id_vars=[*SLOT, "source", "w"], value_vars=FIELDS, var_name="field", value_name="value")
    by = [*SLOT, "field"]
    med = (
        long.groupby(by)
        .apply(
            lambda g: weighted_median(g["value"].to_numpy(), capped(g["w"].to_numpy(), max_share)), include_groups=False
        )
        .rename("med0")
    )
    long = long.join(med, on=by)
    long["dev"] = (long["value"] - long["med0"]).abs()
    rel = (long["dev"] / long["med0"])[long["dev"] > 0]
    typical = rel.groupby([long["symbol_id"], long["field"]]).median().rename("typical")
    long = long.join(typical, on=["symbol_id", "field"])
    mad = long.groupby(by)["dev"].transform("median")
    sigma = np.maximum.reduce(
        [1.4826 * mad, long["typical"].fillna(0.0) * long["med0"], floor_bps * 1e-4 * long["med0"]]
    )
    long["outlier"] = long["dev"] > k * sigma
    prices = (
        long[~long["outlier"]]
        .groupby(by)
        .apply(lambda g: weighted_median(g["value"].to_numpy(), g["w"].to_numpy()), include_groups=False)
        .unstack("field")
    )
    c = c.merge(long.groupby([*SLOT, "source"])["outlier"].any().reset_index(), on=[*SLOT, "source"])
    used = c[~c["outlier"]]
    side = used.groupby(SLOT).apply(
        lambda g: pd.Series(
            {f: weighted_median(g[f].to_numpy(dtype=float), g["w"].to_numpy()) for f in ("volume", "vwap", "n_trades")}
        ),
        include_groups=False,
    )
    used = used.assign(known=used["ts"] + (used["latency_ms"] * 1e6).round().astype("int64"))
    quality = c.groupby(SLOT).agg(stale=("slot_stale", "first"), outlier_frac=("outlier", "mean"))
    quality = quality.join(
        used.groupby(SLOT).agg(
            n_src=("source", "size"), sources=("source", lambda s: sorted(s)), known_at=("known", "max")
        ),
        how="inner",
    )
    out = prices.join(quality, how="inner").join(side, how="left")
    out["high"] = out[["high", "open", "close"]].max(axis=1)
    out["low"] = out[["low", "open", "close"]].min(axis=1)
    out["volume"] = out["volume"].fillna(0.0)
    out["known_at"] = np.maximum(out["known_at"], out.index.get_level_values("ts"))
    return out.reset_index().sort_values(SLOT, ignore_index=True)
