"""Batch compute of the bar feature sets: one builder per registered feature.

Most features are array builders: one compiled pass over the symbol-sorted columns
(``feature_store.bars.kernels``) that restarts at every symbol's first row, so a value at bar t is
computed from that symbol's bars up to t and nothing else. The rest (VWAP distance, the
Corwin-Schultz spread) are polars expressions evaluated once over the whole frame, with the rows
whose window would reach into the previous symbol nulled (cheaper than ``over`` per feature). Every
value looks only backwards, so a value at bar t never changes when a later bar changes. Warm-up rows
a window cannot fill yet are null.

RSI, ATR and EMA reproduce TA-Lib's definitions exactly: the recursion is seeded by the simple
mean of the first window (TA-Lib's default, unstable period 0) and then smoothed with Wilder's
1/n (RSI, ATR) or 2/(n+1) (EMA). ``tests/feature_store/test_bar_features.py`` holds them to TA-Lib.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core.errors import ConfigError, TableError
from feature_store.bars import kernels
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


@dataclass
class Columns:
    """A symbol-sorted frame's columns as float64 numpy arrays, each converted once, and its layout."""

    frame: pl.DataFrame
    layout: Layout
    _arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.ascontiguousarray(self.frame[name].to_numpy(), dtype=np.float64)
        return self._arrays[name]

    def window(self, kernel: Callable, name: str, n: int, first: int) -> np.ndarray:
        """A rolling ``kernel`` (``feature_store.bars.kernels``) over ``n`` rows of column ``name``."""
        return kernel(self[name], self.layout.starts, self.layout.ends, n, first)


# An expression builder returns (expression over the whole symbol-sorted column, warm-up rows); rows
# whose index within their symbol is below the warm-up are nulled, which also discards the values a
# window spanning two symbols would give. An array builder returns a numpy column computed per symbol
# (NaN where it has no value) by the compiled loops of ``feature_store.bars.kernels``.
ExprBuilder = Callable[[FeatureDef], tuple[pl.Expr, int]]
ArrayBuilder = Callable[[FeatureDef, Columns], np.ndarray]


def _n(f: FeatureDef) -> int:
    return int(f.param["n"])


def _seeded(x: np.ndarray, layout: Layout, n: int, first: int, alpha: float) -> np.ndarray:
    """TA-Lib's smoother per symbol: NaN before ``first``, the mean of the ``n`` values ending there, then EWM."""
    return kernels.seeded(x, layout.starts, layout.ends, n, first, alpha)


def _rsi(f: FeatureDef, cols: Columns) -> np.ndarray:
    n = _n(f)
    d = np.diff(cols["close"], prepend=np.nan)
    up = _seeded(np.clip(d, 0.0, None), cols.layout, n, n, 1.0 / n)
    down = _seeded(np.clip(-d, 0.0, None), cols.layout, n, n, 1.0 / n)
    total = up + down
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, 100.0 * up / total, np.where(np.isnan(total), np.nan, 0.0))


def _atr(f: FeatureDef, cols: Columns) -> np.ndarray:
    n = _n(f)
    h, lo, c = cols["high"], cols["low"], cols["close"]
    prev = np.concatenate([[np.nan], c[:-1]])
    tr = np.fmax(h - lo, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    return _seeded(tr, cols.layout, n, n, 1.0 / n)


def _ema(f: FeatureDef, cols: Columns) -> np.ndarray:
    n = _n(f)
    return _seeded(cols["close"], cols.layout, n, n - 1, 2.0 / (n + 1))


def _ewma_vol(f: FeatureDef, cols: Columns) -> np.ndarray:
    r2 = np.diff(np.log(cols["close"]), prepend=np.nan) ** 2
    return np.sqrt(_seeded(r2, cols.layout, 1, 1, 1.0 - float(f.param["lam"])))


def _window(kernel: Callable, column: str, first: Callable[[int], int]) -> ArrayBuilder:
    """A builder applying a rolling ``kernel`` over ``n`` rows of ``column``, valid from row ``first(n)`` of a series."""

    def build(f: FeatureDef, cols: Columns) -> np.ndarray:
        return cols.window(kernel, column, _n(f), first(_n(f)))

    return build


def _ret(f: FeatureDef, cols: Columns) -> np.ndarray:
    return kernels.lag_diff(cols["_lc"], cols.layout.starts, cols.layout.ends, _n(f))


def _donchian_pos(f: FeatureDef, cols: Columns) -> np.ndarray:
    n = _n(f)
    hi = cols.window(kernels.rolling_max, "high", n, n - 1)
    lo = cols.window(kernels.rolling_min, "low", n, n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hi > lo, (cols["close"] - lo) / (hi - lo), np.nan)


def _rv(cols: Columns, n: int) -> np.ndarray:
    """Realised vol over ``n`` bars, valid from row ``n`` of a series (its first return is row 1)."""
    return kernels.rolling_rms(cols["_r1"] ** 2, cols.layout.starts, cols.layout.ends, n, n)


def _rv_n(f: FeatureDef, cols: Columns) -> np.ndarray:
    return _rv(cols, _n(f))


def _vol_of_vol(f: FeatureDef, cols: Columns) -> np.ndarray:
    n, inner = _n(f), int(f.param["inner"])
    return kernels.rolling_std(_rv(cols, inner), cols.layout.starts, cols.layout.ends, n, n + inner - 1)


def _vwap_dist(f: FeatureDef) -> tuple[pl.Expr, int]:
    n = _n(f)
    price = pl.coalesce(pl.col("vwap"), (_h + _l + _c) / 3.0)
    vol = _v.rolling_sum(n)
    return pl.when(vol > 0).then(_c / ((price * _v).rolling_sum(n) / vol) - 1.0), n - 1


def _volume_z(f: FeatureDef, cols: Columns) -> np.ndarray:
    n, v = _n(f), cols["volume"]
    sd = cols.window(kernels.rolling_std, "volume", n, n - 1)
    mean = cols.window(kernels.rolling_mean, "volume", n, n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, (v - mean) / sd, np.nan)


def _adv_share(f: FeatureDef, cols: Columns) -> np.ndarray:
    n, v = _n(f), cols["volume"]
    adv = cols.window(kernels.rolling_mean, "volume", n, n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(adv > 0, v / adv, np.nan)


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
    "vwap_dist_20": _vwap_dist,
    "spread_bps_21": _spread_bps,
}
ARRAY_BUILDERS: dict[str, ArrayBuilder] = {
    **{f"ret_{n}": _ret for n in (1, 5, 21, 63)},
    "ret_mean_21": _window(kernels.rolling_mean, "_r1", lambda n: n),
    "ret_std_21": _window(kernels.rolling_std, "_r1", lambda n: n),
    "rsi_14": _rsi,
    "atr_14": _atr,
    "donchian_high_20": _window(kernels.rolling_max, "high", lambda n: n - 1),
    "donchian_low_20": _window(kernels.rolling_min, "low", lambda n: n - 1),
    "donchian_pos_20": _donchian_pos,
    **{f"ema_{n}": _ema for n in (10, 20, 50)},
    "ewma_vol": _ewma_vol,
    **{f"rv_{n}": _rv_n for n in (5, 21, 63)},
    "vol_of_vol_21": _vol_of_vol,
    "volume_z_21": _volume_z,
    "adv_share_21": _adv_share,
}
BUILDERS = {**EXPR_BUILDERS, **ARRAY_BUILDERS}


def columns(frame: pl.DataFrame, fs: FeatureSet, names: tuple[str, ...] | None = None) -> list[pl.Series]:
    """Compute the features of ``fs`` (or ``names``) on a ``prepare``d frame, one typed Series each."""
    layout = Layout.of(frame[SERIES])
    names = names or fs.names
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise ConfigError(f"feature set {fs.name}: no batch builder for {unknown} in feature_store.bars.compute")
    base = frame.with_columns(pl.col("close").log().alias("_lc")).with_columns(pl.col("_lc").diff().alias("_r1"))
    cols, raw, masked, out = Columns(base, layout), [], [], {}
    for name in names:
        if name in EXPR_BUILDERS:
            expr, need = EXPR_BUILDERS[name](fs[name])
            # computed once into a column, then warm-up rows and NaN nulled by one `when` (cheaper than fill_nan)
            raw.append(expr.alias(f"_raw_{name}"))
            x = pl.col(f"_raw_{name}")
            masked.append(pl.when((pl.col("_i") >= need) & x.is_not_nan()).then(x).alias(name))
        else:
            out[name] = pl.Series(name, ARRAY_BUILDERS[name](fs[name], cols), nan_to_null=True)
    if raw:  # every symbol at once; eager on purpose: the lazy engine's rolling sums vary in the last
        # ulp with the frame's length, so a value at t would move (1e-19) when rows after t change
        index = np.arange(frame.height) - np.repeat(layout.starts, layout.ends - layout.starts)
        computed = base.with_columns(pl.Series("_i", index)).with_columns(raw).select(masked)
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
