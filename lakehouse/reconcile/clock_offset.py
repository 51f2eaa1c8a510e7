"""Clock offsets between vendors, found by cross-correlating their returns, and their correction.

Two vendors quoting the same instrument move together; if one stamps its data in the wrong time
zone or with a drifting clock, the correlation of their returns peaks at a non-zero lag. Returns
are taken on a regular grid (1-minute closes by default) and correlated over every lag up to
``max_lag`` (12 hours) at once with an FFT. The offset recorded is what to ADD to the source's
timestamps to align it with the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from polars._typing import SchemaDict

from lakehouse.schema import MINUTE_NS
from lakehouse.schema import PL_TS as TS

OFFSET_SCHEMA: SchemaDict = {
    "source": pl.String,
    "reference": pl.String,
    "symbol_id": pl.String,
    "window_start": TS,
    "window_end": TS,
    "offset_ns": pl.Int64,
    "corr": pl.Float64,
    "known_at": TS,
}

_WINDOW = ("window_start", "window_end", "known_at")  # an offset is known once its window has been seen


@dataclass(frozen=True)
class OffsetConfig:
    """How offsets are searched: grid step, largest lag, and when a peak counts."""

    step_ns: int = MINUTE_NS
    max_lag_ns: int = 12 * 60 * MINUTE_NS
    min_corr: float = 0.2  # a peak below this is no evidence of anything
    zero_margin: float = 0.05  # keep lag 0 unless the peak beats corr(0) by this much
    noise_z: float = 1.25  # a peak must also beat the largest correlation noise alone would give


def noise_ceiling(n_returns: int, n_lags: int, z: float = 1.0) -> float:
    """Largest correlation expected by chance among ``n_lags`` lags of ``n_returns`` returns.

    The maximum of M roughly independent N(0, 1/N) correlations is about sqrt(2 ln M / N); a short
    window searched over many lags finds a spurious peak above a fixed threshold (issue: a
    50-minute window reported a -15 min offset at corr 0.33).
    """
    if z <= 0:
        return 0.0
    if n_returns <= 1 or n_lags <= 1:
        return 1.0
    return z * float(np.sqrt(2.0 * np.log(n_lags) / n_returns))


def _returns_on_grid(ts_ns: np.ndarray, price: np.ndarray, origin: int, size: int, step: int) -> np.ndarray:
    grid = np.full(size, np.nan)
    idx = (ts_ns - origin) // step
    keep = (idx >= 0) & (idx < size)
    grid[idx[keep]] = np.log(price[keep])
    ret = np.diff(grid, prepend=np.nan)
    ret[~np.isfinite(ret)] = 0.0
    return ret - ret[ret != 0].mean() * (ret != 0) if (ret != 0).any() else ret


def xcorr(
    source: pl.DataFrame, reference: pl.DataFrame, cfg: OffsetConfig = OffsetConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Return (lags in steps, correlation) of the two series' grid returns for |lag| <= max_lag.

    ``corr[lag]`` compares the source at ``t + lag`` with the reference at ``t``: a source
    stamped ``L`` steps late peaks at ``lag = L``.
    """
    s_ts, r_ts = (f.get_column("ts").cast(TS).dt.epoch("ns").to_numpy() for f in (source, reference))
    step = cfg.step_ns
    origin = min(s_ts.min(), r_ts.min()) // step * step
    size = int((max(s_ts.max(), r_ts.max()) - origin) // step + 1)
    a = _returns_on_grid(s_ts, source.get_column("close").to_numpy(), origin, size, step)
    b = _returns_on_grid(r_ts, reference.get_column("close").to_numpy(), origin, size, step)
    n = 1 << int(np.ceil(np.log2(2 * size)))
    full = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    max_lag = int(min(cfg.max_lag_ns // step, size - 1))
    lags = np.arange(-max_lag, max_lag + 1)
    norm = np.sqrt((a * a).sum() * (b * b).sum()) or 1.0
    return lags, full[lags % n] / norm


def best_lag(source: pl.DataFrame, reference: pl.DataFrame, cfg: OffsetConfig = OffsetConfig()) -> tuple[int, float]:
    """Return (lag in steps, correlation) where the source's returns best match the reference's."""
    lags, corr = xcorr(source, reference, cfg)
    i = int(np.argmax(corr))
    zero = float(corr[lags == 0][0])
    floor = max(cfg.min_corr, noise_ceiling(min(source.height, reference.height) - 1, len(lags), cfg.noise_z))
    if corr[i] < floor or corr[i] - zero < cfg.zero_margin:
        return 0, zero
    return int(lags[i]), float(corr[i])


def detect_offsets(
    bars: pl.DataFrame,
    window_start,
    window_end,
    cfg: OffsetConfig = OffsetConfig(),
    reference: dict[str, str] | None = None,
    session_fit: dict[tuple[str, str], float] | None = None,
) -> pl.DataFrame:
    """Return one row per (source, symbol): the offset to add to its ts and the correlation there.

    ``bars`` holds per-source bars (source, symbol_id, ts, close) on a grid of ``cfg.step_ns``.
    The reference of a symbol is ``reference[symbol]`` if given, else the source whose clock
    agrees with most others (smallest total |offset|); ties go to the source whose bars fall
    inside the symbol's trading sessions most often (``session_fit[(source, symbol)]``), then to
    the one with most bars.
    """
    fit = session_fit or {}
    rows = []
    for (symbol,), part in sorted(bars.partition_by("symbol_id", as_dict=True).items()):
        series = {s: p.sort("ts") for (s,), p in part.partition_by("source", as_dict=True).items()}
        names = sorted(series, key=lambda s: (-fit.get((s, symbol), 0.0), -series[s].height, s))
        if len(names) < 2:
            continue
        pair = {}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:  # the lag of (b, a) is minus the lag of (a, b)
                lag, corr = best_lag(series[a], series[b], cfg)
                pair[(a, b)], pair[(b, a)] = (lag, corr), (-lag, corr)
        ref = (reference or {}).get(symbol) or min(
            names, key=lambda r: (sum(abs(pair[(s, r)][0]) for s in names if s != r), names.index(r))
        )
        for s in names:
            if s == ref:
                continue
            lag, corr = pair[(s, ref)]
            rows.append(
                {"source": s, "reference": ref, "symbol_id": symbol, "offset_ns": -lag * cfg.step_ns, "corr": corr}
            )
    frame = pl.DataFrame(rows, schema={k: v for k, v in OFFSET_SCHEMA.items() if k not in _WINDOW})
    return frame.with_columns(
        pl.lit(window_start).cast(TS).alias("window_start"),
        pl.lit(window_end).cast(TS).alias("window_end"),
        pl.lit(window_end).cast(TS).alias("known_at"),
    ).select(OFFSET_SCHEMA.keys())


def apply_offsets(frame: pl.DataFrame, offsets: pl.DataFrame, columns: tuple[str, ...] = ("ts",)) -> pl.DataFrame:
    """Shift each (source, symbol)'s timestamp columns by its recorded ``offset_ns``."""
    if offsets.height == 0:
        return frame
    shift = offsets.select("source", "symbol_id", "offset_ns")
    out = frame.join(shift, on=["source", "symbol_id"], how="left", maintain_order="left").with_columns(
        pl.col("offset_ns").fill_null(0)
    )
    present = [c for c in columns if c in frame.columns]
    return out.with_columns(
        (pl.col(c).cast(TS).dt.epoch("ns") + pl.col("offset_ns")).cast(TS).alias(c) for c in present
    ).drop("offset_ns")
