"""Option features (``options_v1``) from bronze.options_chain, as of the last chain known at each bar.

Per (underlying, chain snapshot ts):
- ATM strike per expiry by put-call parity (the strike where |call mid - put mid| is smallest), ATM IV
  the mean of that strike's call and put IV; ``atm_iv`` for the nearest expiry at least
  ``MIN_DAYS`` away, ``iv_term_slope`` = ATM IV of the next expiry minus the nearest's;
- ``iv_skew_25d``: IV of the put nearest delta -0.25 minus the call nearest +0.25 (nearest expiry);
- put/call volume and open-interest ratios over the whole chain;
- greek aggregates weighted by open interest: sum delta*OI, gamma*OI, vega*OI.
Each bar of the underlying takes the latest snapshot with ``snapshot ts <= bar ts`` (as-of join);
its ``known_at`` is the later of the bar's and the snapshot's. ``iv_minus_rv`` subtracts the bar's
annualised 21-bar realised vol from the ATM IV.
"""

from __future__ import annotations

import math

import polars as pl

from feature_store.bars.compute import bar_features
from feature_store.registry import FeatureDef, FeatureSet, register
from lakehouse.corporate_actions import TS_NS

MIN_DAYS = 7
ANNUAL = math.sqrt(252.0)
CHAIN = "bronze.options_chain"
KEYS = ("underlying", "ts", "expiry", "strike", "right")


def _o(name: str, description: str, cols: tuple[str, ...] = ("iv",)) -> FeatureDef:
    return FeatureDef(
        name, params={"min_days": MIN_DAYS}, input_table=CHAIN, input_columns=cols, window=1, description=description
    )


OPTIONS_V1 = register(
    FeatureSet(
        "options_v1",
        "1d",
        (
            _o("atm_iv", "ATM implied vol of the nearest expiry >= 7 days (put-call parity ATM)", ("bid", "ask", "iv")),
            _o("iv_term_slope", "ATM IV of the next expiry minus the nearest", ("bid", "ask", "iv", "expiry")),
            _o("iv_skew_25d", "25-delta put IV minus 25-delta call IV, nearest expiry", ("iv", "delta")),
            _o("pc_volume_ratio", "put volume / call volume over the chain", ("volume",)),
            _o("pc_oi_ratio", "put open interest / call open interest over the chain", ("open_interest",)),
            _o("delta_oi", "sum of delta x open interest", ("delta", "open_interest")),
            _o("gamma_oi", "sum of gamma x open interest", ("gamma", "open_interest")),
            _o("vega_oi", "sum of vega x open interest", ("vega", "open_interest")),
            FeatureDef(
                "iv_minus_rv",
                params={"n": 21},
                input_table=CHAIN,
                input_columns=("iv", "close"),
                window=22,
                description="ATM IV minus annualised 21-bar realised vol of the underlying",
            ),
        ),
        "option chain features as of the last chain known",
    )
)


def _mid() -> pl.Expr:
    both = pl.col("bid").is_not_null() & pl.col("ask").is_not_null() & (pl.col("ask") > 0)
    return pl.when(both).then((pl.col("bid") + pl.col("ask")) / 2).otherwise(pl.col("last"))


def _atm(chain: pl.DataFrame) -> pl.DataFrame:
    """ATM IV per (underlying, ts, expiry) by put-call parity."""
    c = chain.filter(pl.col("iv") > 0).with_columns(_mid().alias("mid"))
    calls = c.filter(pl.col("right") == "C").select("underlying", "ts", "expiry", "strike", "mid", "iv")
    puts = c.filter(pl.col("right") == "P").select("underlying", "ts", "expiry", "strike", "mid", "iv")
    pairs = calls.join(puts, on=["underlying", "ts", "expiry", "strike"], suffix="_p").drop_nulls(["mid", "mid_p"])
    pairs = pairs.with_columns((pl.col("mid") - pl.col("mid_p")).abs().alias("gap"))
    return (
        pairs.sort("gap", "strike")
        .group_by("underlying", "ts", "expiry")
        .agg(((pl.col("iv") + pl.col("iv_p")) / 2).first().alias("atm_iv"))
        .sort("underlying", "ts", "expiry")
    )


def _nearest_delta(frame: pl.DataFrame, right: str, target: float) -> pl.DataFrame:
    f = frame.filter((pl.col("right") == right) & pl.col("delta").is_not_null() & (pl.col("iv") > 0))
    f = f.with_columns((pl.col("delta") - target).abs().alias("dd"))
    return f.sort("dd").group_by("underlying", "ts").agg(pl.col("iv").first().alias(f"iv_{right}"))


def chain_features(chain: pl.DataFrame) -> pl.DataFrame:
    """One row per (underlying, snapshot ts) with the ``options_v1`` chain features (not ``iv_minus_rv``)."""
    chain = chain.unique(list(KEYS), keep="first", maintain_order=True).with_columns(pl.col("ts").cast(TS_NS))
    days = (pl.col("expiry").cast(pl.Date) - pl.col("ts").dt.date()).dt.total_days()
    atm = _atm(chain).with_columns(days.alias("days")).filter(pl.col("days") >= MIN_DAYS)
    term = atm.group_by("underlying", "ts").agg(
        pl.col("atm_iv").sort_by("expiry").first().alias("atm_iv"),
        (
            pl.col("atm_iv").sort_by("expiry").get(1, null_on_oob=True) - pl.col("atm_iv").sort_by("expiry").first()
        ).alias("iv_term_slope"),
        pl.col("expiry").min().alias("near"),
    )
    near = chain.join(term.select("underlying", "ts", "near"), on=["underlying", "ts"]).filter(
        pl.col("expiry") == pl.col("near")
    )
    skew = _nearest_delta(near, "P", -0.25).join(
        _nearest_delta(near, "C", 0.25), on=["underlying", "ts"], how="full", coalesce=True
    )
    put, call = pl.col("right") == "P", pl.col("right") == "C"

    def ratio(column: str) -> pl.Expr:
        p, c = pl.col(column).filter(put).sum(), pl.col(column).filter(call).sum()
        return pl.when(c > 0).then(p / c)

    agg = chain.group_by("underlying", "ts").agg(
        ratio("volume").alias("pc_volume_ratio"),
        ratio("open_interest").alias("pc_oi_ratio"),
        *((pl.col(g) * pl.col("open_interest")).sum().alias(f"{g}_oi") for g in ("delta", "gamma", "vega")),
    )
    out = agg.join(term.drop("near"), on=["underlying", "ts"], how="left").join(
        skew, on=["underlying", "ts"], how="left"
    )
    return (
        out.with_columns((pl.col("iv_P") - pl.col("iv_C")).alias("iv_skew_25d"))
        .drop("iv_P", "iv_C")
        .sort("underlying", "ts")
    )


def options_features(bars: pl.DataFrame, chain: pl.DataFrame) -> pl.DataFrame:
    """``options_v1`` rows for each bar of the chain's underlyings (as of the last snapshot at or before ts)."""
    snaps = chain_features(chain).rename({"underlying": "symbol_id", "ts": "chain_ts"}).sort("chain_ts")
    rv = bar_features(bars, "bar_v1", ("rv_21",)).sort("ts")
    j = rv.join_asof(
        snaps, left_on="ts", right_on="chain_ts", by="symbol_id", strategy="backward", check_sortedness=False
    )
    j = j.filter(pl.col("chain_ts").is_not_null())
    return j.select(
        "symbol_id",
        pl.lit(OPTIONS_V1.tf).alias("tf"),
        "ts",
        pl.max_horizontal("known_at", "chain_ts").alias("known_at"),
        pl.lit(OPTIONS_V1.name).alias("feature_set"),
        *(pl.col(n).cast(pl.Float64) for n in OPTIONS_V1.names if n != "iv_minus_rv"),
        (pl.col("atm_iv") - pl.col("rv_21") * ANNUAL).alias("iv_minus_rv"),
    ).sort("symbol_id", "ts")
