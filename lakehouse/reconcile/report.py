"""Accuracy of the reconciliation against the simulator's ground truth.

Two references for a bar's close, each beside the same error for every single vendor's own bars
(bps: MAE, RMSE, p99, max):
- ``consensus_error``: the true MID at the bar end. Right for bars of quote mids; for trade bars
  it carries the bid-ask bounce and the drift since the last trade, a floor (~1.7 bps RMSE in the
  default simulation) common to every vendor and to the consensus, which hides their differences;
- ``tape_error``: the close of the same bar built from the true trades (the exchange's tape,
  rounded to the tick). Like for like for trade bars: what remains is vendor noise, latency
  (prints pushed into the next bar), clock errors and injected faults, which the consensus is
  there to remove.
- outlier detection: a vendor's bar is truly bad when an injected bad print falls in it; it is
  flagged when the consensus marked that vendor's contribution an outlier. Precision and recall.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from lakehouse.reconcile.bars import build_bars
from lakehouse.schema import PL_TS as TS


def _errors(frame: pl.DataFrame, truth: pl.DataFrame, name: str) -> dict:
    joined = (
        frame.select("symbol_id", "ts", "close")
        .sort("ts")
        .join_asof(
            truth.select("symbol_id", pl.col("ts").cast(TS), pl.col("price").alias("true")).sort("ts"),
            on="ts",
            by="symbol_id",
            strategy="backward",
            check_sortedness=False,
        )
        .drop_nulls("true")
    )
    return _summary(joined, name)


def _summary(joined: pl.DataFrame, name: str) -> dict:
    err = (joined["close"] / joined["true"] - 1.0).abs() * 1e4
    return {
        "series": name,
        "n": joined.height,
        "mae_bps": err.mean(),
        "rmse_bps": cast(float, (err**2).mean()) ** 0.5,
        "p99_bps": err.quantile(0.99),
        "max_bps": err.max(),
    }


def consensus_error(consensus: pl.DataFrame, per_source: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Return close-vs-truth errors (bps) of the consensus and of each vendor, one row each."""
    rows = [_errors(consensus, truth, "consensus")]
    for (source,), part in sorted(per_source.partition_by("source", as_dict=True).items()):
        rows.append(_errors(part, truth, source))
    return pl.DataFrame(rows)


def tape_error(
    consensus: pl.DataFrame,
    per_source: pl.DataFrame,
    true_trades: pl.DataFrame,
    tf: str,
    calendars: dict[str, str],
    tick_size: float,
) -> pl.DataFrame:
    """Return close errors (bps) against the bars of the true tape (true trades rounded to the tick).

    ``true_trades`` has symbol_id, ts, price, size (the simulator's ``TruthDay`` trades); bars
    absent from the tape (no true trade in them) are not scored.
    """
    tape = true_trades.select(
        pl.lit("tape").alias("source"),
        "symbol_id",
        pl.col("ts").cast(TS),
        ((pl.col("price") / tick_size).round() * tick_size).alias("price"),
        "size",
    )
    true_bars = build_bars(tape, tf, calendars).bars.select("symbol_id", "ts", pl.col("close").alias("true"))

    def score(frame: pl.DataFrame, name: str) -> dict:
        return _summary(frame.select("symbol_id", "ts", "close").join(true_bars, on=["symbol_id", "ts"]), name)

    rows = [score(consensus.filter(pl.col("tf") == tf), "consensus")]
    for (source,), part in sorted(per_source.filter(pl.col("tf") == tf).partition_by("source", as_dict=True).items()):
        rows.append(score(part, source))
    return pl.DataFrame(rows)


def outlier_scores(observations: pl.DataFrame, events: pl.DataFrame, tf: str, calendars: dict[str, str]) -> dict:
    """Return precision and recall of outlier flags against injected bad prints (per vendor bar)."""
    bad = events.filter(pl.col("kind") == "bad_print").select(
        pl.col("vendor").alias("source"),
        "symbol_id",
        pl.col("ts").cast(TS),
        pl.lit(1.0).alias("price"),
        pl.lit(0.0).alias("size"),
    )
    truth = (
        build_bars(bad, tf, calendars).bars.select("source", "symbol_id", "ts").unique()
        if bad.height
        else pl.DataFrame(schema={"source": pl.String, "symbol_id": pl.String, "ts": TS})
    )
    delivered = observations.filter(pl.col("delivered"))
    truth = truth.join(delivered.select("source", "symbol_id", "ts"), on=["source", "symbol_id", "ts"], how="semi")
    flagged = delivered.filter(pl.col("outlier")).select("source", "symbol_id", "ts")
    tp = flagged.join(truth, on=["source", "symbol_id", "ts"], how="semi").height
    return {
        "bad_bars": truth.height,
        "flagged": flagged.height,
        "true_positives": tp,
        "precision": tp / flagged.height if flagged.height else 1.0,
        "recall": tp / truth.height if truth.height else 1.0,
    }
