"""``mps profile``: data dictionary, quality report (gaps against the calendar) and sample SQL as Markdown."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from typer.testing import CliRunner

from feature_store.data_profile import bar_quality
from lakehouse.adjust import _default_quality
from lakehouse.tables import SILVER_BARS


def _bars(lean_daily) -> pl.DataFrame:
    return lean_daily.filter(
        pl.col("symbol_id").is_in(["IBM:US", "SPY:US"]),
        pl.col("ts").is_between(datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 3, 1, tzinfo=UTC)),
    )


def test_bar_quality_counts_missing_sessions(lean_daily):
    bars = _bars(lean_daily)
    holed = bars.filter(~((pl.col("symbol_id") == "IBM:US") & (pl.col("ts").dt.day() == 15)))
    q = bar_quality(holed, "XNYS").sort("symbol_id")
    ibm, spy = q.row(0, named=True), q.row(1, named=True)
    assert spy["missing_sessions"] == 0 and spy["median_step_s"] == 86400
    # the 15th of January is a session; the 15th of February 2014 is a Saturday
    assert ibm["missing_sessions"] == 1 and ibm["missing_examples"] == "2014-01-15"
    assert ibm["rows"] == spy["rows"] - 1


def test_mps_profile_writes_markdown(lake, lean_daily, tmp_path):
    from mps.cli import app

    lake.append(
        SILVER_BARS,
        _bars(lean_daily).with_columns(pl.lit("raw").alias("adjustment"), _default_quality().alias("quality")),
    )
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["profile", "--lake", lake.root, "--out", str(out)])
    assert result.exit_code == 0, result.output
    quality = (out / "quality.md").read_text()
    assert "## silver.bars" in quality and "IBM:US" in quality and "missing_sessions" in quality
    assert "## gold.features" in (out / "data_dictionary.md").read_text()
    assert "SELECT ts, close, volume FROM silver.bars" in (out / "sample_sql.md").read_text()
