"""The weighted median per group, vectorised: sort, cumulate weights, take the first half-crossing."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def weighted_median(
    frame: Frame, by: list[str], value: str = "value", weight: str = "w", alias: str | None = None
) -> Frame:
    """Return one row per ``by`` group with the weighted median of ``value``.

    Rows are sorted by (group, value); the median is the first value whose cumulative weight
    reaches half the group's total (the lower weighted median on an exact tie). Null values and
    non-positive weights are ignored; a group with none left yields no row.
    """
    w = pl.col(weight)
    return (
        frame.filter(pl.col(value).is_not_null() & (w > 0))
        .sort([*by, value])
        .with_columns(w.cum_sum().over(by).alias("_cw"), w.sum().over(by).alias("_tw"))
        .filter(pl.col("_cw") >= pl.col("_tw") * (0.5 - 1e-12))
        .group_by(by, maintain_order=True)
        .agg(pl.col(value).first().alias(alias or value))
    )
