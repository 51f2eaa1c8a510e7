"""The bar feature sets: one declaration per feature, shared by every timeframe.

``bar_v1`` (daily bars) and ``bar_1m_v1`` (minute bars) hold the same definitions; windows count
bars. Inputs are silver.bars OHLCV adjusted point in time (``feature_store.pit_prices``). The batch
expressions live in ``feature_store.bars.compute`` under the same names.
"""

from __future__ import annotations

from feature_store.registry import FeatureDef, FeatureSet, register

BARS = "silver.bars"
OHLC = ("high", "low", "close")


def _f(name: str, window: int, description: str, cols: tuple[str, ...] = ("close",), **params) -> FeatureDef:
    return FeatureDef(name, params=params, input_table=BARS, input_columns=cols, window=window, description=description)


BAR_FEATURES: tuple[FeatureDef, ...] = (
    *(_f(f"ret_{n}", n + 1, f"log return over {n} bars", n=n) for n in (1, 5, 21, 63)),
    _f("ret_mean_21", 22, "rolling mean of 1-bar log returns", n=21),
    _f("ret_std_21", 22, "rolling std (ddof 1) of 1-bar log returns", n=21),
    _f("rsi_14", 0, "RSI (Wilder), equal to TA-Lib RSI", n=14),
    _f("atr_14", 0, "average true range (Wilder), equal to TA-Lib ATR", OHLC, n=14),
    _f("donchian_high_20", 20, "highest high over 20 bars (TA-Lib MAX)", ("high",), n=20),
    _f("donchian_low_20", 20, "lowest low over 20 bars (TA-Lib MIN)", ("low",), n=20),
    _f("donchian_pos_20", 20, "close within the 20-bar Donchian channel, 0..1", OHLC, n=20),
    *(_f(f"ema_{n}", 0, f"EMA({n}) of close seeded by the SMA, equal to TA-Lib EMA", n=n) for n in (10, 20, 50)),
    _f("ewma_vol", 0, "RiskMetrics EWMA volatility of 1-bar log returns", lam=0.94),
    *(_f(f"rv_{n}", n + 1, f"realised vol over {n} bars: sqrt(mean r^2)", n=n) for n in (5, 21, 63)),
    _f("vol_of_vol_21", 26, "rolling std of rv_5 over 21 bars", n=21, inner=5),
    _f("vwap_dist_20", 20, "close / rolling 20-bar VWAP - 1", ("high", "low", "close", "volume", "vwap"), n=20),
    _f("volume_z_21", 21, "volume z-score against the last 21 bars", ("volume",), n=21),
    _f("adv_share_21", 21, "bar volume / average volume of the last 21 bars", ("volume",), n=21),
    _f("spread_bps_21", 22, "Corwin-Schultz high-low spread estimate, bps, mean of 21", ("high", "low"), n=21),
)

BAR_V1 = register(FeatureSet("bar_v1", "1d", BAR_FEATURES, "daily bar features"))
BAR_1M_V1 = register(FeatureSet("bar_1m_v1", "1m", BAR_FEATURES, "minute bar features"))
