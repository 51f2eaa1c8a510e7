"""``make demo`` end to end on the tiny configuration: a local Prefect server running the ingest and reconcile
flows (bronze -> silver behind the quality gate), gold features, the Rust scorer, gold.signals."""

from __future__ import annotations

import io
import shutil

import polars as pl
import pytest
from rich.console import Console

from lakehouse.sql import query
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS, SILVER_BARS, SILVER_FRESHNESS, SILVER_QUALITY_RESULTS
from mps.demo import MODEL, TINY, run_demo
from mps.prefect_server import PrefectServer
from mps.scorer_process import scorer_binary
from training.onnx_export import read_metadata


@pytest.fixture(scope="module")
def scorer():
    if not scorer_binary(build=False).is_file() and shutil.which("cargo") is None:
        pytest.skip("the Rust scorer is not built and cargo is not installed to build it")
    return scorer_binary()


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, scorer):
    out = io.StringIO()
    report = run_demo(TINY, tmp_path, Console(file=out, width=160))
    facts = report.facts
    assert facts["accounts_balanced"] and facts["ingest_failures"] == 0
    assert facts["rows_read"] == facts["rows_written"] > 0
    # every published update came back as exactly one signal, stored once
    assert facts["updates_published"] == facts["feature_rows"] > 0
    assert facts["signals_stored"] == facts["updates_published"] == facts["scorer_signals"] == facts["scorer_updates"]
    assert facts["scorer_deadletters"] == 0 and facts["scorer_exit"] == 0
    lake = Lake(str(tmp_path / "demo" / "lake"))
    signals = lake.read(GOLD_SIGNALS)
    assert signals.height == facts["gold_signals_rows"] == facts["updates_published"]
    assert signals["symbol_id"].n_unique() == len(TINY.symbols)
    assert signals["prob_up"].is_between(0, 1).all() and (signals["q05"] <= signals["q95"]).all()
    # the first lookback - 1 updates of each symbol are guarded as warm-up, then the guard lifts
    guards = signals.group_by("symbol_id").agg((pl.col("guard") == "warmup").sum().alias("warm"))
    assert (guards["warm"] == read_metadata(MODEL).lookback - 1).all()
    # the flows ran on the demo's own Prefect server, which recorded them and was stopped afterwards
    runs = {title: frame for title, frame in report.sections}["Prefect flow runs"]
    assert runs.select("flow", "state").rows() == [("ingest", "Completed"), ("reconcile", "Completed")]
    assert facts["prefect_startup_s"] > 0 and "2. start a local Prefect server" in report.timings
    assert (tmp_path / "demo" / "prefect" / "prefect.db").is_file()
    assert not PrefectServer(tmp_path, port=int(facts["prefect_ui"].rsplit(":", 1)[1])).healthy()
    # silver: every bar passed the gate, its results are persisted and rendered
    bars = lake.read(SILVER_BARS)
    assert set(bars["tf"].unique()) == set(TINY.timeframes)
    assert facts["gate_passed"] == bars.height == facts["gate_rows_in"]
    assert lake.read(SILVER_QUALITY_RESULTS).height == facts["gate_expectations"] > 0
    assert (tmp_path / "demo" / "quality-docs" / "index.html").is_file()
    fresh = lake.read(SILVER_FRESHNESS)
    assert fresh.height == facts["freshness_pairs"] == len(TINY.symbols) * 3  # three simulated vendors
    assert fresh["as_of"].unique().to_list() == [TINY.window[1]] and not fresh["stale"].any()
    # accuracy against the simulator's truth, from what the flows persisted
    assert facts["consensus_rmse_bps"]["1s"] < 5
    assert facts["outlier_recall"]["1s"] == 1.0 and facts["outlier_precision"]["1s"] == 1.0
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "Signals per symbol" in md and f"updates_published: {facts['updates_published']:,}" in md
    by_sql = query(lake, "SELECT count(*) AS n FROM gold.signals")
    assert by_sql["n"][0] == signals.height
