"""Expectation suites, declared once per silver table.

A ``Suite`` names the table it guards, the columns that identify one series, how to derive the
``_`` columns its expectations read (see ``lakehouse.quality.derive``) and the expectations
themselves. Great Expectations evaluates every suite (on a pandas copy of the batch); nothing
else decides whether a silver row passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import great_expectations.expectations as gxe
import polars as pl

from core.errors import TableError
from lakehouse.quality.derive import bar_statistics, ts_step
from lakehouse.quality.rules import QualityRules
from lakehouse.schema import TableSpec
from lakehouse.tables import SILVER_BARS, SILVER_CONTINUOUS, SILVER_FRESHNESS, SILVER_VENDOR_STATS

Derive = Callable[[pl.DataFrame, QualityRules, "pl.DataFrame | None", "pl.DataFrame | None"], pl.DataFrame]


@dataclass(frozen=True)
class Suite:
    """The expectations of one silver table, with the derived columns they need."""

    table: TableSpec
    series: tuple[str, ...]
    build: Callable[[QualityRules], list[gxe.Expectation]]
    derive: Derive

    @property
    def name(self) -> str:
        return self.table.qualified

    def expectations(self, rules: QualityRules) -> list[gxe.Expectation]:
        return self.build(rules)


def label(expectation: gxe.Expectation) -> str:
    """A stable, unique name for an expectation in a suite: its type and the columns it reads."""
    return f"{expectation.expectation_type}:{','.join(columns(expectation))}"


def columns(expectation: gxe.Expectation) -> list[str]:
    """The columns an expectation reads, in the order it names them."""
    kw = expectation.configuration.kwargs
    if "column" in kw:
        return [kw["column"]]
    if "column_A" in kw:
        return [kw["column_A"], kw["column_B"]]
    return list(kw.get("column_list", []))


def _ohlc(low_high_only: bool = False) -> list[gxe.Expectation]:
    pairs = (
        [("high", "low")]
        if low_high_only
        else [("high", "low"), ("high", "open"), ("high", "close"), ("open", "low"), ("close", "low")]
    )
    return [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True) for a, b in pairs]


def _unique(spec: TableSpec) -> gxe.Expectation:
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.keys))


def _increasing() -> gxe.Expectation:
    # Strictly increasing ts within a series, in batch order: each step is at least 1 ns.
    return gxe.ExpectColumnValuesToBeBetween(column="_ts_step_ns", min_value=1)


def _known_after_ts() -> gxe.Expectation:
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="known_at", column_B="ts", or_equal=True)


def _bars(rules: QualityRules) -> list[gxe.Expectation]:
    return [
        *_ohlc(),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, max_value=rules.volume.max_volume),
        _unique(SILVER_BARS),
        _increasing(),
        _known_after_ts(),
        gxe.ExpectColumnValuesToBeBetween(column="_jump_z", max_value=rules.jump.max_z),
        gxe.ExpectColumnValuesToBeBetween(column="_volume_excess", max_value=1.0),
    ]


def _derive_bars(
    df: pl.DataFrame, rules: QualityRules, history: pl.DataFrame | None, splits: pl.DataFrame | None
) -> pl.DataFrame:
    series = list(BARS.series)
    return ts_step(bar_statistics(df, series, rules, history, splits), series)


def _continuous(rules: QualityRules) -> list[gxe.Expectation]:
    # Panama back-adjusted prices may be negative: no log-return statistics here.
    return [
        *_ohlc(),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
        _unique(SILVER_CONTINUOUS),
        _increasing(),
        _known_after_ts(),
        gxe.ExpectColumnValuesToNotBeNull(column="contract"),
    ]


def _derive_series(series: tuple[str, ...]) -> Derive:
    def derive(df, rules, history, splits):
        return ts_step(df, list(series))

    return derive


def _vendor_stats(rules: QualityRules) -> list[gxe.Expectation]:
    return [
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1)
            for c in ("uptime", "reliability", "outlier_rate")
        ),
        gxe.ExpectColumnValuesToBeBetween(column="latency_ms", min_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="window_end", column_B="window_start"),
        _unique(SILVER_VENDOR_STATS),
    ]


def _freshness(rules: QualityRules) -> list[gxe.Expectation]:
    return [
        gxe.ExpectColumnValuesToBeBetween(column="age_ms", min_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="as_of", column_B="last_ts", or_equal=True),
        _unique(SILVER_FRESHNESS),
    ]


def _as_is(df, rules, history, splits):
    return df


BARS = Suite(SILVER_BARS, ("symbol_id", "tf", "adjustment"), _bars, _derive_bars)
CONTINUOUS = Suite(
    SILVER_CONTINUOUS,
    ("symbol_id", "tf", "method", "roll_rule"),
    _continuous,
    _derive_series(("symbol_id", "tf", "method", "roll_rule")),
)
VENDOR_STATS = Suite(SILVER_VENDOR_STATS, ("source", "symbol_id"), _vendor_stats, _as_is)
FRESHNESS = Suite(SILVER_FRESHNESS, ("symbol_id", "source"), _freshness, _as_is)

SUITES: dict[str, Suite] = {s.name: s for s in (BARS, CONTINUOUS, VENDOR_STATS, FRESHNESS)}


def suite_for(spec: TableSpec) -> Suite:
    """Return the suite guarding ``spec``; the error lists the tables that have one."""
    try:
        return SUITES[spec.qualified]
    except KeyError:
        raise TableError(
            f"no quality suite for {spec.qualified}; suites exist for {', '.join(sorted(SUITES))}"
        ) from None
