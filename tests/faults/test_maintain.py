"""`mps maintain` compacts small files, checkpoints the log and vacuums past the time-travel window;
reads give the same rows before and after (issue 8: the sink's half-second appends pile up files)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable
from ingest_helpers import CLOCK_AT, trades
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.maintain import compact_partitions, maintain, maintain_table
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_TRADES, TABLES
from mps.cli import app


def _many_small_files(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    ingestor = Ingestor(lake, lambda: CLOCK_AT)
    for i in range(12):  # one small file per batch, like the sink's appends
        ingestor.run(
            [
                Batch(
                    "v",
                    f"f{i}",
                    f"b{i}",
                    [
                        Chunk(
                            BRONZE_TRADES,
                            trades(20, 0).slice(0, 20).with_columns(pl.col("ts") + pl.duration(seconds=i)),
                        )
                    ],
                )
            ]
        )
    return lake


def _rows(lake: Lake) -> pl.DataFrame:
    return lake.read(BRONZE_TRADES).sort("ts", "seq")


def test_maintain_compacts_checkpoints_and_keeps_the_rows(tmp_path):
    lake = _many_small_files(tmp_path)
    before, version_before = _rows(lake), lake.delta(BRONZE_TRADES).version()
    upkeep = maintain_table(lake, BRONZE_TRADES, retention=timedelta(hours=0))
    assert upkeep.files_before >= 12 and upkeep.files_after < upkeep.files_before
    assert upkeep.vacuumed >= upkeep.compacted > 0  # zero window: replaced files are deleted at once
    assert_frame_equal(_rows(lake), before)
    log = Path(lake.uri(BRONZE_TRADES)) / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet")) and (log / "_last_checkpoint").exists()
    fresh = DeltaTable(lake.uri(BRONZE_TRADES))  # a reader opening from the checkpoint sees the same
    assert fresh.to_pyarrow_table().num_rows == before.height and fresh.version() > version_before
    again = Ingestor(lake, lambda: CLOCK_AT).run(
        [Batch("v", "f0", "b0", [Chunk(BRONZE_TRADES, trades(20, 0))])]
    )  # idempotence survives compaction: the re-delivered file adds nothing
    assert again.total("rows_written") == 0


def test_a_retention_window_keeps_time_travel(tmp_path):
    lake = _many_small_files(tmp_path)
    old_version = 3
    old = DeltaTable(lake.uri(BRONZE_TRADES), version=old_version).to_pyarrow_table().num_rows
    maintain_table(lake, BRONZE_TRADES, retention=timedelta(days=7))
    assert DeltaTable(lake.uri(BRONZE_TRADES), version=old_version).to_pyarrow_table().num_rows == old


def test_mps_maintain_runs_over_every_table(tmp_path):
    lake = _many_small_files(tmp_path)
    before = _rows(lake)
    done, failed = maintain(lake, TABLES.values(), timedelta(hours=168))
    assert not failed and {u.table for u in done} >= {"bronze.trades", "bronze.ingest_log"}
    result = CliRunner().invoke(app, ["maintain", "--lake", lake.root, "--retention-hours", "0"])
    assert result.exit_code == 0, result.output
    assert "bronze.trades: files" in result.output
    assert_frame_equal(_rows(lake), before)


def _compact_at_once(lake: Lake) -> list:
    """One ``mps maintain`` pass and three partition compactions, started together on one table."""
    start = threading.Barrier(4)
    outcomes: list = []

    def compact(maintain_pass: bool) -> None:
        mine = Lake(lake.root)  # each compactor its own view of the table, as separate processes have
        start.wait()
        if maintain_pass:
            outcomes.append(maintain_table(mine, BRONZE_TRADES, retention=timedelta(days=7)))
        else:
            outcomes.append(compact_partitions(mine, BRONZE_TRADES, [{}], target_file_bytes=1 << 26))

    threads = [threading.Thread(target=compact, args=(i == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_compactions_that_run_at_once_take_turns_and_never_double_a_row(tmp_path):
    """deltalake commits two OPTIMIZEs of the same files that ran at once (every row then stored
    twice): the signal sink's replicas and ``mps maintain`` compact under one lease per table."""
    lake = _many_small_files(tmp_path)
    ingestor = Ingestor(lake, lambda: CLOCK_AT)
    for round_ in range(3):
        before = _rows(lake)
        assert len(_compact_at_once(lake)) == 4
        assert_frame_equal(_rows(lake), before)
        for i in range(6):  # more small files for the next round to fight over
            shifted = trades(20, 0).with_columns(pl.col("ts") + pl.duration(minutes=round_ + 1, seconds=i))
            ingestor.run([Batch("v", f"r{round_}-{i}", f"r{round_}-{i}", [Chunk(BRONZE_TRADES, shifted)])])
