"""Batch compute of the bar feature sets: one polars expression builder per registered feature.

Windowed features are polars expressions evaluated once over the whole symbol-sorted frame, with the
rows whose window would reach into the previous symbol nulled (cheaper than ``over`` per feature);
recursive smoothers are one numba pass over every series. Every value looks only backwards (shift, rolling
windows, recursions seeded at the start of the series), so a value at bar t never changes when a
later bar changes. Warm-up rows a window cannot fill yet are null.

RSI, ATR and EMA reproduce TA-Lib's definitions exactly: the recursion is seeded by the simple
mean of the first window (TA-Lib's default, unstable period 0) and then smoothed with Wilder's
1/n (RSI, ATR) or 2/(n+1) (EMA). ``tests/feature_store/test_bar_features.py`` holds them to TA-Lib.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from core.errors import ConfigError, TableError
from feature_store.registry import FeatureDef, FeatureSet
from feature_store.registry import get as get_set

SERIES = "symbol_id"
REQUIRED = ("symbol_id", "ts", "known_at", "open", "high", "low", "close", "volume")

_c, _h, _l, _v = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")


@dataclass(frozen=True)
class Layout:
    """One symbol-sorted frame's layout: row offsets where each symbol's series starts and ends."""

    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, symbols: pl.Series) -> Layout:
        starts = (symbols != symbols.shift(1)).fill_null(True).arg_true().to_numpy().astype(np.int64)
        return cls(starts, np.concatenate([starts[1:], [len(symbols)]]))


# An expression builder returns (expression over the whole symbol-sorted column, warm-up rows); rows
# whose index within their symbol is below the warm-up are nulled, which also discards the values a
# window spanning two symbols would give. A recursive builder returns a numpy column computed per symbol.
ExprBuilder = Callable[[FeatureDef], tuple[pl.Expr, int]]
ArrayBuilder = Callable[[FeatureDef, pl.DataFrame, Layout], np.ndarray]


def _n(f: FeatureDef) -> int:
    return int(f.param["n"])


def _lc() -> pl.Expr:
    return pl.col("_lc")  # log(close), computed once per frame in ``columns``


def _r1() -> pl.Expr:
    return pl.col("_r1")  # 1-bar log return (crosses symbols at a series start: masked by the warm-up)


def _seeded_loop(x, starts, ends, n, first, alpha):  # pragma: no cover - runs compiled by numba
    out = np.full(len(x), np.nan)
    for g in range(len(starts)):
        g0, g1 = starts[g], ends[g]
        if g1 - g0 <= first:
            continue
        total = 0.0
        for k in range(g0 + first - n + 1, g0 + first + 1):
            total += x[k]
        y = total / n
        out[g0 + first] = y
        for k in range(g0 + first + 1, g1):
            y = alpha * x[k] + (1.0 - alpha) * y
            out[k] = y
    return out


@cache
def _seeded_kernel():
    """``_seeded_loop`` compiled once (numba imported here so the registry and `mps sql` stay light)."""
    from numba import njit

    return njit(cache=True, nogil=True)(_seeded_loop)


def _seeded(x: np.ndarray, layout: Layout, n: int, first: int, alpha: float) -> np.ndarray:
    """TA-Lib's smoother per symbol: NaN before ``first``, the mean of the ``n`` values ending there, then EWM.

    One compiled pass over every symbol's series (no per-symbol Python loop).
    """
    return _seeded_kernel()(np.ascontiguousarray(x, dtype=np.float64), layout.starts, layout.ends, n, first, alpha)


def _col(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy().astype(np.float64, copy=False)


def _rsi(f: FeatureDef, frame: pl.DataFrame, layout: Layout) -> np.ndarray:
    n = _n(f)
    d = np.diff(_col(frame, "close"), prepend=np.nan)
    up = _seeded(np.clip(d, 0.0, None), layout, n, n, 1.0 / n)
    down = _seeded(np.clip(-d, 0.0, None), layout, n, n, 1.0 / n)
    total = up + down
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, 100.0 * up / total, np.where(np.isnan(total), np.nan, 0.0))


def _atr(f: FeatureDef, frame: pl.DataFrame, layout: Layout) -> np.ndarray:
    n = _n(f)
    h, lo, c = _col(frame, "high"), _col(frame, "low"), _col(frame, "close")
    prev = np.concatenate([[np.nan], c[:-1]])
    tr = np.fmax(h - lo, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    return _seeded(tr, layout, n, n, 1.0 / n)


def _ema(f: FeatureDef, frame: pl.DataFrame, layout: Layout) -> np.ndarray:
    n = _n(f)
    return _seeded(_col(frame, "close"), layout, n, n - 1, 2.0 / (n + 1))


def _ewma_vol(f: FeatureDef, frame: pl.DataFrame, layout: Layout) -> np.ndarray:
    r2 = np.diff(np.log(_col(frame, "close")), prepend=np.nan) ** 2
    return np.sqrt(_seeded(r2, layout, 1, 1, 1.0 - float(f.param["lam"])))


def _ret(f: FeatureDef) -> tuple[pl.Expr, int]:
    return _lc() - _lc().shift(_n(f)), _n(f)


def _donchian_pos(f: FeatureDef) -> tuple[pl.Expr, int]:
    hi, lo = _h.rolling_max(_n(f)), _l.rolling_min(_n(f))
    return pl.when(hi > lo).then((_c - lo) / (hi - lo)), _n(f) - 1


def _rv(n: int) -> pl.Expr:
    return (_r1() ** 2).rolling_mean(n).sqrt()


def _vwap_dist(f: FeatureDef) -> tuple[pl.Expr, int]:
    n = _n(f)
    price = pl.coalesce(pl.col("vwap"), (_h + _l + _c) / 3.0)
    vol = _v.rolling_sum(n)
    return pl.when(vol > 0).then(_c / ((price * _v).rolling_sum(n) / vol) - 1.0), n - 1


def _volume_z(f: FeatureDef) -> tuple[pl.Expr, int]:
    sd = _v.rolling_std(_n(f))
    return pl.when(sd > 0).then((_v - _v.rolling_mean(_n(f))) / sd), _n(f) - 1


def _adv_share(f: FeatureDef) -> tuple[pl.Expr, int]:
    adv = _v.rolling_mean(_n(f))
    return pl.when(adv > 0).then(_v / adv), _n(f) - 1


def _spread_bps(f: FeatureDef) -> tuple[pl.Expr, int]:
    """Corwin-Schultz (2012) two-bar high-low spread estimate, floored at 0, averaged over n."""
    k = 3.0 - 2.0 * math.sqrt(2.0)
    hl = (_h / _l).log() ** 2
    beta = hl + hl.shift(1)
    gamma = (pl.max_horizontal(_h, _h.shift(1)) / pl.min_horizontal(_l, _l.shift(1))).log() ** 2
    alpha = ((2.0 * beta).sqrt() - beta.sqrt()) / k - (gamma / k).sqrt()
    s = (2.0 * (alpha.exp() - 1.0) / (1.0 + alpha.exp())).clip(lower_bound=0.0)
    return 1e4 * s.rolling_mean(_n(f)), _n(f)


EXPR_BUILDERS: dict[str, ExprBuilder] = {
    **{f"ret_{n}": _ret for n in (1, 5, 21, 63)},
    "ret_mean_21": lambda f: (_r1().rolling_mean(_n(f)), _n(f)),
    "ret_std_21": lambda f: (_r1().rolling_std(_n(f)), _n(f)),
    "donchian_high_20": lambda f: (_h.rolling_max(_n(f)), _n(f) - 1),
    "donchian_low_20": lambda f: (_l.rolling_min(_n(f)), _n(f) - 1),
    "donchian_pos_20": _donchian_pos,
    **{f"rv_{n}": (lambda f: (_rv(_n(f)), _n(f))) for n in (5, 21, 63)},
    "vol_of_vol_21": lambda f: (_rv(int(f.param["inner"])).rolling_std(_n(f)), _n(f) + int(f.param["inner"]) - 1),
    "vwap_dist_20": _vwap_dist,
    "volume_z_21": _volume_z,
    "adv_share_21": _adv_share,
    "spread_bps_21": _spread_bps,
}
ARRAY_BUILDERS: dict[str, ArrayBuilder] = {
    "rsi_14": _rsi,
    "atr_14": _atr,
    **{f"ema_{n}": _ema for n in (10, 20, 50)},
    "ewma_vol": _ewma_vol,
}
BUILDERS = {**EXPR_BUILDERS, **ARRAY_BUILDERS}


def columns(frame: pl.DataFrame, fs: FeatureSet, names: tuple[str, ...] | None = None) -> list[pl.Series]:
    """Compute the features of ``fs`` (or ``names``) on a ``prepare``d frame, one typed Series each."""
    layout = Layout.of(frame[SERIES])
    index = np.arange(frame.height) - np.repeat(layout.starts, layout.ends - layout.starts)
    names = names or fs.names
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise ConfigError(f"feature set {fs.name}: no batch builder for {unknown} in feature_store.bars.compute")
    raw, masked, out = [], [], {}
    for name in names:
        if name in EXPR_BUILDERS:
            expr, need = EXPR_BUILDERS[name](fs[name])
            # computed once into a column, then warm-up rows and NaN nulled by one `when` (cheaper than fill_nan)
            raw.append(expr.alias(f"_raw_{name}"))
            x = pl.col(f"_raw_{name}")
            masked.append(pl.when((pl.col("_i") >= need) & x.is_not_nan()).then(x).alias(name))
        else:
            out[name] = pl.Series(name, ARRAY_BUILDERS[name](fs[name], frame, layout), nan_to_null=True)
    if raw:  # every symbol at once; eager on purpose: the lazy engine's rolling sums vary in the last
        # ulp with the frame's length, so a value at t would move (1e-19) when rows after t change
        base = frame.with_columns(pl.Series("_i", index), pl.col("close").log().alias("_lc"))
        base = base.with_columns(pl.col("_lc").diff().alias("_r1")).with_columns(raw)
        computed = base.select(masked)
        out.update({c: computed[c] for c in computed.columns})
    return [out[n].cast(pl.Float32 if fs[n].dtype == "float32" else pl.Float64) for n in names]


def is_ordered(frame: pl.DataFrame) -> bool:
    """Whether ``frame`` is already sorted by (symbol_id, ts) with no repeated key (a linear check, no sort)."""
    sym, ts = pl.col(SERIES), pl.col("ts")
    ordered = ((sym > sym.shift(1)) | ((sym == sym.shift(1)) & (ts > ts.shift(1)))).fill_null(True).all()
    return bool(frame.select(ordered).item())


def prepare(bars: pl.DataFrame) -> pl.DataFrame:
    """Check and order bars for ``bar_features``: one series per symbol, ``ts`` increasing."""
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise TableError(f"bar features need columns {missing}; got {bars.columns}")
    if "vwap" not in bars.columns:
        bars = bars.with_columns(pl.lit(None, pl.Float64).alias("vwap"))
    if is_ordered(bars):
        return bars  # already one strictly increasing series per symbol (as the flow reads silver): no sort
    out = bars.sort(SERIES, "ts")
    sym, ts = pl.col(SERIES), pl.col("ts")
    same = (sym == sym.shift(1)) & (ts == ts.shift(1))
    dup = out.select(same.any()).item()
    if dup:
        raise TableError("bar features need one bar per (symbol_id, ts); filter one tf and one adjustment first")
    return out


def bar_features(
    bars: pl.DataFrame, feature_set: str | FeatureSet = "bar_v1", names: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """Compute a bar feature set: symbol_id, tf, ts, known_at, feature_set, one column per feature.

    ``bars`` are one timeframe's bars (silver.bars columns; ``vwap`` optional). A row's ``known_at``
    is the running maximum of the bars' ``known_at`` (and at least ``ts``): the row is known only
    once every bar it depends on is.
    """
    fs = get_set(feature_set) if isinstance(feature_set, str) else feature_set
    b = prepare(bars)
    known, first = pl.max_horizontal("known_at", "ts"), pl.col(SERIES) != pl.col(SERIES).shift(1)
    rising = b.select((first.fill_null(True) | (known >= known.shift(1))).all()).item()
    keys = b.select(
        SERIES,
        pl.lit(fs.tf).alias("tf"),
        "ts",
        # the running max per series; when no bar's known_at goes back (the usual case) it is the value itself
        (known if rising else known.cum_max().over(SERIES)).alias("known_at"),
        pl.lit(fs.name).alias("feature_set"),
    )
    return keys.with_columns(columns(b, fs, names))
