"""`mps ingest` then `mps reconcile` as a user runs them: bronze from the simulator, silver from the flow."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from mps.cli import app


def test_ingest_then_reconcile_from_the_cli(tmp_path, prefect_harness):
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    res = runner.invoke(
        app,
        [
            "ingest",
            "simulator",
            "--lake",
            lake,
            "-P",
            "session_minutes=20",
            "-P",
            "symbols=[SIM1:SIM]",
            "-P",
            "tables=[trades]",
        ],
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"total: read ([\d,]+) = written \1 \+ duplicates 0 \+ quarantined 0", res.output)
    res = runner.invoke(
        app,
        [
            "reconcile",
            "--lake",
            lake,
            "--start",
            "2026-01-05T14:30",
            "--end",
            "2026-01-05T14:50",
            "--tf",
            "1m",
            "--symbol",
            "SIM1:SIM",
        ],
    )
    assert res.exit_code == 0, res.output
    bars = int(re.search(r"silver.bars: ([\d,]+) rows", res.output).group(1).replace(",", ""))
    assert bars == 20  # one consensus bar per minute of the 20-minute session
    res = runner.invoke(
        app,
        [
            "sql",
            "--lake",
            lake,
            "-f",
            "csv",
            "SELECT min(quality.n_src) AS lo, max(quality.n_src) AS hi FROM silver.bars WHERE tf = '1m'",
        ],
    )
    assert res.exit_code == 0, res.output
    lo, hi = map(int, res.output.strip().splitlines()[1].split(","))
    assert hi == 3 and lo >= 2  # three vendors; a gap or stale spell leaves two


def test_bad_time_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["reconcile", "--lake", str(tmp_path), "--start", "yesterday", "--end", "now"])
    assert res.exit_code == 2 and "'yesterday': not an ISO-8601 time" in res.output
