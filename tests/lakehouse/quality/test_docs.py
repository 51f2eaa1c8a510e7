"""Validation results are browsable: the HTML site lists runs, failed expectations and quarantined rows."""

from __future__ import annotations

import polars as pl

from lakehouse.quality import gate
from lakehouse.quality.docs import build_docs, run_file
from lakehouse.tables import SILVER_BARS


def test_docs_show_runs_and_the_failing_expectation(lake, clock, make_bars, tmp_path):
    bad = make_bars(120).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(-3.0).otherwise(pl.col("volume")).alias("volume")
    )
    gate(lake, SILVER_BARS, make_bars(120), "run-ok", clock)
    gate(lake, SILVER_BARS, bad, "run-bad", clock)
    index = build_docs(lake, tmp_path / "docs")
    text = index.read_text()
    assert "run-ok" in text and "run-bad" in text and "FAILED" in text
    page = (index.parent / run_file("run-bad", "silver.bars")).read_text()
    assert "expect_column_values_to_be_between:volume" in page
    assert "expectation expect_column_values_to_be_between failed on volume (1 rows)" in page
    assert "&quot;volume&quot;:-3.0" in page  # the quarantined row's raw JSON
    ok_page = (index.parent / run_file("run-ok", "silver.bars")).read_text()
    assert "FAILED" not in ok_page and "Quarantined rows" not in ok_page


def test_docs_of_an_empty_lake(lake, tmp_path):
    index = build_docs(lake, tmp_path / "docs")
    assert "0 validation runs" in index.read_text()
