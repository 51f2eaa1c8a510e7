"""Accuracy of the reconciliation against the simulator's ground truth.

- consensus error: the consensus close at each bar end against the true price at that instant,
  beside the same error for every single vendor's own bar closes (bps: MAE, RMSE, p99, max);
- outlier detection: a vendor's bar is truly bad when an injected bad print falls in it; it is
  flagged when the consensus marked that vendor's contribution an outlier. Precision and recall.
"""

from __future__ import annotations

import polars as pl

from lakehouse.reconcile.bars import build_bars

TS = pl.Datetime("ns", "UTC")


def _errors(frame: pl.DataFrame, truth: pl.DataFrame, name: str) -> dict:
    joined = (frame.select("symbol_id", "ts", "close").sort("ts")
              .join_asof(truth.select("symbol_id", pl.col("ts").cast(TS), pl.col("price").alias("true")).sort("ts"),
                         on="ts", by="symbol_id", strategy="backward", check_sortedness=False)
              .drop_nulls("true"))
    err = ((joined["close"] / joined["true"] - 1.0).abs() * 1e4)
    return {"series": name, "n": joined.height, "mae_bps": err.mean(), "rmse_bps": (err ** 2).mean() ** 0.5,
            "p99_bps": err.quantile(0.99), "max_bps": err.max()}


def consensus_error(consensus: pl.DataFrame, per_source: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Return close-vs-truth errors (bps) of the consensus and of each vendor, one row each."""
    rows = [_errors(consensus, truth, "consensus")]
    for (source,), part in sorted(per_source.partition_by("source", as_dict=True).items()):
        rows.append(_errors(part, truth, source))
    return pl.DataFrame(rows)


def outlier_scores(observations: pl.DataFrame, events: pl.DataFrame, tf: str, calendars: dict[str, str]) -> dict:
    """Return precision and recall of outlier flags against injected bad prints (per vendor bar)."""
    bad = events.filter(pl.col("kind") == "bad_print").select(
        pl.col("vendor").alias("source"), "symbol_id", pl.col("ts").cast(TS), pl.lit(1.0).alias("price"),
        pl.lit(0.0).alias("size"))
    truth = (build_bars(bad, tf, calendars).bars.select("source", "symbol_id", "ts").unique()
             if bad.height else pl.DataFrame(schema={"source": pl.String, "symbol_id": pl.String, "ts": TS}))
    delivered = observations.filter(pl.col("delivered"))
    truth = truth.join(delivered.select("source", "symbol_id", "ts"), on=["source", "symbol_id", "ts"], how="semi")
    flagged = delivered.filter(pl.col("outlier")).select("source", "symbol_id", "ts")
    tp = flagged.join(truth, on=["source", "symbol_id", "ts"], how="semi").height
    return {"bad_bars": truth.height, "flagged": flagged.height, "true_positives": tp,
            "precision": tp / flagged.height if flagged.height else 1.0,
            "recall": tp / truth.height if truth.height else 1.0}
