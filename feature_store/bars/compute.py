"""Batch compute of the bar feature sets: one polars expression builder per registered feature.

Each builder turns a ``FeatureDef`` into an expression over ONE symbol's bars in time order
(``bar_features`` evaluates it per symbol with ``over``). Every expression looks only backwards
(shift, rolling windows, recursive smoothers seeded at the start of the series), so a value at bar
t never changes when a later bar changes. Warm-up rows a window cannot fill yet are null.

RSI, ATR and EMA reproduce TA-Lib's definitions exactly: the recursion is seeded by the simple
mean of the first window (TA-Lib's default, unstable period 0) and then smoothed with Wilder's
1/n (RSI, ATR) or 2/(n+1) (EMA). ``tests/feature_store/test_bar_features.py`` holds them to TA-Lib.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import polars as pl

from core.errors import ConfigError, TableError
from feature_store.registry import FeatureDef, FeatureSet
from feature_store.registry import get as get_set

Builder = Callable[[FeatureDef], pl.Expr]
SERIES = "symbol_id"
REQUIRED = ("symbol_id", "ts", "known_at", "open", "high", "low", "close", "volume")

_c, _h, _l, _v = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")


def _n(f: FeatureDef) -> int:
    return int(f.param["n"])


def _i() -> pl.Expr:
    return pl.int_range(pl.len())


def _r1() -> pl.Expr:
    return _c.log().diff()


def _seeded(x: pl.Expr, n: int, first: int, alpha: float) -> pl.Expr:
    """TA-Lib's smoother: null before ``first``, the mean of the last ``n`` values at ``first``, then EWM."""
    seed = pl.when(_i() < first).then(None).when(_i() == first).then(x.rolling_mean(n)).otherwise(x)
    return seed.ewm_mean(alpha=alpha, adjust=False)


def _ret(f: FeatureDef) -> pl.Expr:
    return _c.log() - _c.log().shift(_n(f))


def _rsi(f: FeatureDef) -> pl.Expr:
    n = _n(f)
    d = _c.diff()
    up = _seeded(d.clip(lower_bound=0.0), n, n, 1.0 / n)
    down = _seeded((-d).clip(lower_bound=0.0), n, n, 1.0 / n)
    total = up + down
    return pl.when(total != 0).then(100.0 * up / total).otherwise(pl.when(total.is_not_null()).then(0.0))


def _true_range() -> pl.Expr:
    prev = _c.shift(1)
    return pl.max_horizontal(_h - _l, (_h - prev).abs(), (_l - prev).abs())


def _atr(f: FeatureDef) -> pl.Expr:
    n = _n(f)
    return _seeded(pl.when(_i() > 0).then(_true_range()), n, n, 1.0 / n)


def _ema(f: FeatureDef) -> pl.Expr:
    n = _n(f)
    return _seeded(_c, n, n - 1, 2.0 / (n + 1))


def _donchian_pos(f: FeatureDef) -> pl.Expr:
    hi, lo = _h.rolling_max(_n(f)), _l.rolling_min(_n(f))
    return pl.when(hi > lo).then((_c - lo) / (hi - lo))


def _ewma_vol(f: FeatureDef) -> pl.Expr:
    return (_r1() ** 2).ewm_mean(alpha=1.0 - float(f.param["lam"]), adjust=False).sqrt()


def _rv(n: int) -> pl.Expr:
    return (_r1() ** 2).rolling_mean(n).sqrt()


def _vwap_dist(f: FeatureDef) -> pl.Expr:
    n = _n(f)
    price = pl.coalesce(pl.col("vwap"), (_h + _l + _c) / 3.0)
    vol = _v.rolling_sum(n)
    return pl.when(vol > 0).then(_c / ((price * _v).rolling_sum(n) / vol) - 1.0)


def _volume_z(f: FeatureDef) -> pl.Expr:
    sd = _v.rolling_std(_n(f))
    return pl.when(sd > 0).then((_v - _v.rolling_mean(_n(f))) / sd)


def _adv_share(f: FeatureDef) -> pl.Expr:
    adv = _v.rolling_mean(_n(f))
    return pl.when(adv > 0).then(_v / adv)


def _spread_bps(f: FeatureDef) -> pl.Expr:
    """Corwin-Schultz (2012) two-bar high-low spread estimate, floored at 0, averaged over n."""
    k = 3.0 - 2.0 * math.sqrt(2.0)
    hl = (_h / _l).log() ** 2
    beta = hl + hl.shift(1)
    gamma = (pl.max_horizontal(_h, _h.shift(1)) / pl.min_horizontal(_l, _l.shift(1))).log() ** 2
    alpha = ((2.0 * beta).sqrt() - beta.sqrt()) / k - (gamma / k).sqrt()
    s = (2.0 * (alpha.exp() - 1.0) / (1.0 + alpha.exp())).clip(lower_bound=0.0)
    return 1e4 * pl.when(_i() > 0).then(s).rolling_mean(_n(f))


BUILDERS: dict[str, Builder] = {
    **{f"ret_{n}": _ret for n in (1, 5, 21, 63)},
    "ret_mean_21": lambda f: _r1().rolling_mean(_n(f)),
    "ret_std_21": lambda f: _r1().rolling_std(_n(f)),
    "rsi_14": _rsi,
    "atr_14": _atr,
    "donchian_high_20": lambda f: _h.rolling_max(_n(f)),
    "donchian_low_20": lambda f: _l.rolling_min(_n(f)),
    "donchian_pos_20": _donchian_pos,
    **{f"ema_{n}": _ema for n in (10, 20, 50)},
    "ewma_vol": _ewma_vol,
    **{f"rv_{n}": (lambda f: _rv(_n(f))) for n in (5, 21, 63)},
    "vol_of_vol_21": lambda f: _rv(int(f.param["inner"])).rolling_std(_n(f)),
    "vwap_dist_20": _vwap_dist,
    "volume_z_21": _volume_z,
    "adv_share_21": _adv_share,
    "spread_bps_21": _spread_bps,
}


def expressions(fs: FeatureSet, names: tuple[str, ...] | None = None) -> list[pl.Expr]:
    """One per-symbol expression per feature of ``fs`` (or of ``names``), aliased and typed."""
    out = []
    for name in names or fs.names:
        f = fs[name]
        if name not in BUILDERS:
            raise ConfigError(f"feature set {fs.name}: no batch builder for {name!r} in feature_store.bars.compute")
        dtype = pl.Float32 if f.dtype == "float32" else pl.Float64
        out.append(BUILDERS[name](f).fill_nan(None).over(SERIES).cast(dtype).alias(name))
    return out


def prepare(bars: pl.DataFrame) -> pl.DataFrame:
    """Check and order bars for ``bar_features``: one series per symbol, ``ts`` increasing."""
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise TableError(f"bar features need columns {missing}; got {bars.columns}")
    if "vwap" not in bars.columns:
        bars = bars.with_columns(pl.lit(None, pl.Float64).alias("vwap"))
    out = bars.sort(SERIES, "ts")
    dup = out.select(pl.struct(SERIES, "ts").is_duplicated().any()).item()
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
    return b.select(
        SERIES,
        pl.lit(fs.tf).alias("tf"),
        "ts",
        pl.max_horizontal("known_at", "ts").cum_max().over(SERIES).alias("known_at"),
        pl.lit(fs.name).alias("feature_set"),
        *expressions(fs, names),
    )
