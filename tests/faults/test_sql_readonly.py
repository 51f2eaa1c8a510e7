"""`mps sql` is read-only by default, and damaged tables or a lake path that is a file give one clear
error naming them without hiding the other tables (issue 8: COPY TO over a _delta_log made a table
unreadable; one damaged table broke every query)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import CLOCK_AT, batches
from typer.testing import CliRunner

from core.errors import MpsError, TableError
from lakehouse.ingest import Ingestor
from lakehouse.sql import query
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_QUARANTINE, BRONZE_TRADES
from mps.cli import app


@pytest.fixture
def filled(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    Ingestor(lake, lambda: CLOCK_AT).run(batches(files=1, chunks=1, rows=50))
    return lake


def test_copy_to_over_a_delta_log_is_refused(filled):
    log = Path(filled.uri(BRONZE_TRADES)) / "_delta_log" / "00000000000000000099.json"
    with pytest.raises(MpsError, match="read-only"):
        query(filled, f"COPY (SELECT 1 AS x) TO '{log}' (FORMAT csv)")
    assert not log.exists()
    assert query(filled, "SELECT count(*) AS n FROM bronze.trades").item() == 50 - 1  # one bad price


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH '{dir}/x.duckdb' AS x",
        "INSTALL httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
    ],
)
def test_attach_installs_and_file_reads_are_refused(filled, tmp_path, statement):
    with pytest.raises(MpsError):
        query(filled, statement.format(dir=tmp_path))
    assert not (tmp_path / "x.duckdb").exists()


def test_allow_writes_gives_full_power(filled, tmp_path):
    out = tmp_path / "mine.csv"
    result = CliRunner().invoke(
        app,
        ["sql", f"COPY (SELECT count(*) AS n FROM bronze.trades) TO '{out}'", "--allow-writes", "--lake", filled.root],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == ["n", "49"]


def test_a_damaged_table_is_named_and_the_others_stay_readable(filled):
    (Path(filled.uri(BRONZE_QUARANTINE)) / "_delta_log" / "00000000000000000000.json").write_text("garbage{")
    with pytest.raises(TableError, match="bronze.quarantine at .* cannot be read"):
        filled.read(BRONZE_QUARANTINE)
    skipped: list[str] = []
    assert query(filled, "SELECT count(*) FROM bronze.trades", skipped=skipped).item() == 49
    assert len(skipped) == 1 and skipped[0].startswith("bronze.quarantine")
    runner = CliRunner()
    sql = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM bronze.trades", "--lake", filled.root, "-f", "csv"])
    assert sql.exit_code == 0 and "49" in sql.stdout
    tables = runner.invoke(app, ["tables", "--lake", filled.root])
    assert tables.exit_code == 0 and "unreadable" in tables.output and "bronze.trades" in tables.output


def test_a_lake_path_that_is_a_file_is_one_clear_error(tmp_path):
    path = tmp_path / "lake.txt"
    path.write_text("not a lake")
    with pytest.raises(TableError, match="is a file, not a directory"):
        Lake(str(path)).read(BRONZE_TRADES)
    for args in (["tables"], ["sql", "SELECT 1"]):
        result = CliRunner().invoke(app, [*args, "--lake", str(path)])
        assert result.exit_code == 2 and "is a file, not a directory" in " ".join(result.output.split())


def test_mps_ingest_exits_non_zero_when_a_file_failed(tmp_path):
    good = Path(__file__).resolve().parents[1] / "fixtures" / "tabular" / "yahoofinance-AAPL-bad.csv"
    broken = tmp_path / "yahoofinance-AAPL-broken.csv"
    broken.write_text("when,what\n1,2\n")  # none of the mapped columns: the file fails as a whole
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            "tabular",
            "-P",
            "mapping=yahoo_daily",
            "-P",
            f"paths=[{good},{broken}]",
            "--lake",
            str(tmp_path / "l"),
        ],
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "1 file(s) failed" in text and "yahoofinance-AAPL-broken.csv" in text
    assert "written 2" in text  # the good file was still ingested
