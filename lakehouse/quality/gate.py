"""The quality gate in front of every silver write.

``gate(lake, spec, df, run_id, clock)`` validates a batch bound for a silver table against the
table's suite, sends every failing row to ``bronze.quarantine`` (source ``quality``, one row per
failed expectation, reason ``expectation <type> failed on <column>``), persists one result row per
expectation to ``silver.quality_results``, and returns the rows that passed every expectation so
the caller writes them. The run goes on whatever fails. Calling it twice with the same ``run_id``
and batch leaves both tables unchanged (quarantine appends new keys only; results are upserted).

Typical use in a flow::

    passed, result = gate(lake, SILVER_BARS, bars, run_id, clock, history=recent, splits=splits)
    lake.replace_window(SILVER_BARS, passed, predicate)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from lakehouse.quality.rules import DEFAULT_RULES, QualityRules
from lakehouse.quality.runner import Outcome, run_expectations
from lakehouse.quality.suites import columns, suite_for
from lakehouse.schema import TableSpec
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_QUARANTINE, SILVER_QUALITY_RESULTS

SOURCE = "quality"
_POS = "_pos"


@dataclass
class GateResult:
    """What the gate did to one batch."""

    run_id: str
    table: str
    suite: str
    rows_in: int
    rows_passed: int
    rows_quarantined: int
    outcomes: list[Outcome] = field(repr=False)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> dict[str, int]:
        """Unexpected row counts of the expectations that failed, by expectation label."""
        return {o.expectation: o.unexpected_count for o in self.outcomes if not o.success}

    def lines(self) -> list[str]:
        head = (
            f"{self.table} run {self.run_id}: {self.rows_in:,} rows, passed {self.rows_passed:,},"
            f" quarantined {self.rows_quarantined:,}"
        )
        return [head, *(f"  FAILED {k}: {v:,} rows" for k, v in self.failures.items())]


def reason(outcome: Outcome) -> str:
    """The quarantine reason for a row that failed ``outcome``."""
    return f"expectation {outcome.type} failed on {outcome.column}"


def _checked_columns(expectations, df: pl.DataFrame) -> list[str]:
    """The columns the expectations read (only these are converted to pandas)."""
    wanted = {c for e in expectations for c in columns(e)}
    return [c for c in df.columns if c in wanted]


def _failures(outcomes: list[Outcome]) -> pl.DataFrame:
    """One row per (failing row position, failed expectation)."""
    parts = [
        pl.DataFrame(
            {_POS: o.unexpected_index, "reason": [reason(o)] * len(o.unexpected_index)},
            schema={_POS: pl.Int64, "reason": pl.String},
        )
        for o in outcomes
        if o.unexpected_index
    ]
    if not parts:
        return pl.DataFrame(schema={_POS: pl.Int64, "reason": pl.String})
    return pl.concat(parts).unique(maintain_order=True)


def _quarantine_frame(
    spec: TableSpec, df: pl.DataFrame, failures: pl.DataFrame, run_id: str, ingest_ts: datetime
) -> pl.DataFrame:
    payload = [c for c in df.columns if not c.startswith("_")]
    raw = df.select(pl.struct(payload).struct.json_encode().alias("raw")).with_row_index(_POS)
    return failures.join(raw.with_columns(pl.col(_POS).cast(pl.Int64)), on=_POS, how="left").select(
        pl.lit(SOURCE).alias("source"),
        pl.lit(spec.qualified).alias("table"),
        pl.lit(f"{spec.qualified} batch {run_id}").alias("file"),
        (pl.col(_POS) + 1).alias("row"),
        "raw",
        "reason",
        pl.lit(ingest_ts).cast(pl.Datetime("ns", "UTC")).alias("ingest_ts"),
        pl.lit(run_id).alias("batch_id"),
    )


def _results_frame(
    spec: TableSpec, suite: str, outcomes: list[Outcome], run_id: str, validated_at: datetime
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": [run_id] * len(outcomes),
            "table": [spec.qualified] * len(outcomes),
            "suite": [suite] * len(outcomes),
            "expectation": [o.expectation for o in outcomes],
            "column": [o.column or None for o in outcomes],
            "success": [o.success for o in outcomes],
            "element_count": [o.element_count for o in outcomes],
            "unexpected_count": [o.unexpected_count for o in outcomes],
            "details": [o.details for o in outcomes],
            "validated_at": [validated_at] * len(outcomes),
        },
        schema_overrides={
            "element_count": pl.Int64,
            "unexpected_count": pl.Int64,
            "validated_at": pl.Datetime("ns", "UTC"),
            "column": pl.String,
        },
    )


def gate(
    lake: Lake,
    spec: TableSpec,
    df: pl.DataFrame,
    run_id: str,
    clock: Callable[[], datetime],
    *,
    rules: QualityRules = DEFAULT_RULES,
    history: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, GateResult]:
    """Validate a batch for silver table ``spec``; quarantine failures; return (passing rows, result).

    ``df`` holds the rows about to be written (the table's columns; extra columns are ignored by
    the suite and returned unchanged). ``run_id`` identifies the run: it is the quarantine
    ``batch_id`` and the results' ``run_id``. ``history`` (earlier rows of the same series, not
    validated) warms up the rolling volatility and volume baselines; ``splits`` (symbol_id,
    ex_date, ratio) lets raw bars cross a known split without counting it as a price jump.
    Quarantine rows carry the 1-based row number of the failing row in ``df``.
    """
    suite = suite_for(spec)
    expectations = suite.expectations(rules)
    derived = suite.derive(df, rules, history, splits)
    needed = _checked_columns(expectations, derived)
    outcomes = run_expectations(suite.name, derived.select(needed).to_pandas(), expectations)
    now = clock()
    failures = _failures(outcomes)
    quarantine = _quarantine_frame(spec, df, failures, run_id, now)
    lake.append_new(BRONZE_QUARANTINE, quarantine)
    lake.upsert(SILVER_QUALITY_RESULTS, _results_frame(spec, suite.name, outcomes, run_id, now))
    bad = failures.get_column(_POS).unique()
    passed = (
        df.with_row_index(_POS).filter(~pl.col(_POS).cast(pl.Int64).is_in(bad.implode())).drop(_POS)
        if bad.len()
        else df
    )
    result = GateResult(run_id, spec.qualified, suite.name, df.height, passed.height, bad.len(), outcomes)
    return passed, result
