"""The ingest flow on a real LEAN minute file against a real (test) Prefect server."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import polars as pl
import pytest

from core.errors import ConfigError
from lakehouse.security_master import instrument_frame
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_BARS, BRONZE_INGEST_LOG, BRONZE_SECURITY_MASTER

AS_OF = datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
MINUTE = "equity/usa/minute/bac/20131007_trade.zip"


def lines_in(path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(len(io.BytesIO(zf.read(n)).read().splitlines()) for n in zf.namelist())


def test_ingest_flow_lands_a_lean_file_once(prefect_harness, shared_data, tmp_path):
    from flows.ingest import ingest

    root = str(tmp_path / "lake")
    params = {"root": str(shared_data / "lean"), "files": [MINUTE]}
    first = ingest("lean", params, as_of=AS_OF, lake_root=root)
    n = lines_in(shared_data / "lean" / MINUTE)
    assert first["rows_read"] == n and first["balanced"] and first["failures"] == []
    assert first["rows_written"] + first["quarantined"] == n and first["rows_written"] > 300
    assert first["batches"] == 1 and first["security_master_written"] == instrument_frame().height

    lake = Lake(root)
    bars = lake.read(BRONZE_BARS)
    assert bars.height == first["rows_written"] and set(bars.get_column("symbol_id")) == {"BAC:US"}
    assert bars.get_column("ingest_ts").unique().to_list() == [AS_OF]
    assert lake.read(BRONZE_SECURITY_MASTER).height == instrument_frame().height

    second = ingest("lean", params, as_of=AS_OF, lake_root=root)
    assert (second["rows_read"], second["rows_written"], second["duplicates"]) == (n, 0, first["rows_written"])
    assert second["security_master_written"] == 0
    assert lake.read(BRONZE_BARS).height == bars.height
    log = lake.read(BRONZE_INGEST_LOG).filter(pl.col("table") == "bronze.bars")
    assert log.get_column("rows_read").to_list() == [n]  # the same batch is logged once


def test_unreadable_file_is_a_failure_in_the_summary(prefect_harness, shared_data, tmp_path):
    from flows.ingest import ingest

    missing = "equity/usa/minute/bac/20990101_trade.zip"
    out = ingest(
        "lean",
        {"root": str(shared_data / "lean"), "files": [MINUTE, missing]},
        as_of=AS_OF,
        lake_root=str(tmp_path / "lake"),
    )
    assert out["batches"] == 2 and out["rows_read"] == lines_in(shared_data / "lean" / MINUTE)
    (failure,) = out["failures"]
    assert failure["file"].endswith(missing) and "20990101_trade.zip" in failure["message"]


def test_bad_params_fail_the_run_before_any_write(prefect_harness, tmp_path):
    from flows.ingest import ingest

    state = ingest("lean", {"rooot": "/nowhere"}, lake_root=str(tmp_path / "lake"), return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigError, match="rooot"):
        state.result()
    assert not (tmp_path / "lake").exists()
