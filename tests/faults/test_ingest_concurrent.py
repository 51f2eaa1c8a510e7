"""Identical ingests running at once store every row once (issue 8: the key check and the append
were two steps, so two racing runs both found the keys absent and both appended)."""

from __future__ import annotations

import multiprocessing as mp

import polars as pl
import pytest
from ingest_helpers import CLOCK_AT, batches, fingerprint, ingest

from lakehouse.ingest import Ingestor
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_QUARANTINE, BRONZE_TRADES

SHAPE = (2, 6, 200)  # files, chunks per file, rows per chunk: many small commits make the race likely


def _race(root: str, options: dict, writers: int) -> list[dict]:
    ctx = mp.get_context("spawn")  # never fork after deltalake has started its runtime
    barrier = ctx.Manager().Barrier(writers)
    with ctx.Pool(writers) as pool:
        runs = [pool.apply_async(ingest, (root, options, barrier, *SHAPE)) for _ in range(writers)]
        return [r.get(timeout=600) for r in runs]


def _clean(tmp_path) -> dict:
    lake = Lake(str(tmp_path / "clean"))
    Ingestor(lake, lambda: CLOCK_AT).run(batches(*SHAPE))
    return fingerprint(lake)


def _check(lake: Lake, results: list[dict], clean: dict) -> None:
    assert all(r["balanced"] and not r["failures"] for r in results), results
    expected_rows = sum(c.data.height for b in batches(*SHAPE) for c in b.chunks)
    trades = lake.read(BRONZE_TRADES)
    quarantined = lake.read(BRONZE_QUARANTINE).height
    assert trades.height + quarantined == expected_rows
    assert trades.select(pl.struct("source", "symbol_id", "ts", "seq").is_unique().all()).item()
    log = lake.read(BRONZE_INGEST_LOG)
    assert log.height == 2 and log.get_column("rows_written").sum() == trades.height
    assert fingerprint(lake) == clean


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_identical_ingests_store_each_row_once_on_local_disk(tmp_path, writers):
    lake = Lake(str(tmp_path / "lake"))
    _check(lake, _race(lake.root, {}, writers), _clean(tmp_path))


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_identical_ingests_store_each_row_once_on_s3(tmp_path, s3_endpoint, writers):
    lake = Lake(f"s3://{s3_endpoint.create_bucket()}/lake", s3_endpoint.storage_options())
    _check(lake, _race(lake.root, lake.storage_options, writers), _clean(tmp_path))
