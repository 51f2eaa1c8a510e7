"""A simulated option chain: implied vols from the current true vol with a term structure and a smile,
priced and differentiated with Black-Scholes (vectorised numpy).

Greek conventions (as most vendor chains): delta per unit of the underlying, gamma per unit squared,
vega per 1 vol point (0.01), theta per calendar day, rho per 1% of rate.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

EXPIRY_DAYS = (7, 14, 30, 60, 91)
MONEYNESS = np.linspace(-0.2, 0.2, 17)
SKEW, SMILE = -0.15, 0.4


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, accurate to ~1e-7 (erfc rational approximation, Numerical Recipes)."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def black_scholes(spot, strike, t, vol, rate, is_call):
    """Price and greeks of European options; arrays broadcast. Returns a dict of arrays."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    disc = np.exp(-rate * t)
    sign = np.where(is_call, 1.0, -1.0)
    nd1, nd2 = norm_cdf(sign * d1), norm_cdf(sign * d2)
    price = sign * (spot * nd1 - strike * disc * nd2)
    pdf = norm_pdf(d1)
    return {
        "price": price,
        "delta": sign * nd1,
        "gamma": pdf / (spot * vol * sqrt_t),
        "vega": spot * pdf * sqrt_t / 100.0,
        "theta": (-spot * pdf * vol / (2 * sqrt_t) - sign * rate * strike * disc * nd2) / 365.0,
        "rho": sign * strike * t * disc * nd2 / 100.0,
    }


def implied_vol(atm_now: float, long_run: float, t: np.ndarray, log_moneyness: np.ndarray) -> np.ndarray:
    """Term structure reverting from the current vol to the long-run vol, with a skewed smile."""
    atm = long_run + (atm_now - long_run) * np.exp(-t / 0.1)
    x = log_moneyness / np.sqrt(t)
    return np.clip(atm * (1 + SKEW * x + SMILE * x * x), 0.05, 3.0)


def option_chain(
    rng: np.random.Generator,
    underlying: str,
    ts_ns: int,
    day: date,
    spot: float,
    vol_now: float,
    long_run_vol: float,
    rate: float,
) -> pl.DataFrame:
    """One chain snapshot: 5 expiries x 17 strikes x call/put, with bid/ask around the model price."""
    step = 0.5 if spot < 50 else (1.0 if spot < 200 else 5.0)
    strikes = np.unique(np.maximum(np.round(spot * np.exp(MONEYNESS) / step) * step, step))
    days = np.asarray(EXPIRY_DAYS, np.float64)
    t, k, call = (a.ravel() for a in np.meshgrid(days / 365.0, strikes, [True, False], indexing="ij"))
    fwd = spot * np.exp(rate * t)
    iv = implied_vol(vol_now, long_run_vol, t, np.log(k / fwd))
    g = black_scholes(spot, k, t, iv, rate, call)
    theo = np.maximum(g["price"], 0.0)
    half = np.maximum(0.005, 0.02 * theo)
    n = t.shape[0]
    moneyness_decay = np.exp(-np.abs(np.log(k / spot)) * 15)
    expiry_days = np.repeat(np.asarray(EXPIRY_DAYS), strikes.size * 2)
    return pl.DataFrame(
        {
            "ts": pl.Series([ts_ns] * n, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "underlying": [underlying] * n,
            "expiry": [day + timedelta(days=int(d)) for d in expiry_days],
            "strike": k,
            "right": np.where(call, "C", "P"),
            "bid": np.round(np.maximum(theo - half, 0.0), 2),
            "ask": np.round(theo + half + 0.005, 2),
            "last": np.round(theo, 2),
            "volume": rng.poisson(500 * moneyness_decay).astype(np.float64),
            "open_interest": rng.poisson(5000 * moneyness_decay).astype(np.float64),
            "iv": iv,
            "delta": g["delta"],
            "gamma": g["gamma"],
            "vega": g["vega"],
            "theta": g["theta"],
            "rho": g["rho"],
        }
    )
