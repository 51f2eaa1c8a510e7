"""`mps symbols add|list` keeps instruments in the lake's security master; ingest accepts them from then on.
`mps ingest SOURCE --help` ends with that adapter's parameters and an example."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from typer.testing import CliRunner

from lakehouse.ingest import Batch, Chunk
from lakehouse.security_master import known_symbols
from lakehouse.sources.registry import adapter
from lakehouse.tables import BRONZE_BARS, BRONZE_QUARANTINE, BRONZE_SECURITY_MASTER
from mps.cli import app

NVDA = ["NVDA:US", "--asset-class", "equity", "--exchange", "XNAS", "--calendar", "XNYS", "--description", "NVIDIA"]


def _cli(lake, *args: str):
    res = CliRunner().invoke(app, [*args, "--lake", lake.root], terminal_width=240)
    res.text = " ".join(res.output.split())  # the error console wraps at its own width
    return res


def test_add_is_idempotent_listed_and_known_to_ingest(lake):
    assert "NVDA:US" not in known_symbols(lake=lake)
    first = _cli(lake, "symbols", "add", *NVDA)
    assert first.exit_code == 0 and "NVDA:US: added" in first.output, first.output
    again = _cli(lake, "symbols", "add", *NVDA)
    assert again.exit_code == 0 and "unchanged" in again.output
    rows = lake.read(BRONZE_SECURITY_MASTER)
    assert rows.filter(pl.col("symbol_id") == "NVDA:US").select("exchange", "calendar", "tick_size").rows() == [
        ("XNAS", "XNYS", 0.01)
    ]
    assert "NVDA:US" in known_symbols(lake=lake)
    listed = _cli(lake, "symbols", "list").output
    assert "NVDA:US" in listed and "added" in listed and "SIM1:SIM" in listed and "declared" in listed


def test_a_conflicting_redefinition_names_the_fields(lake):
    assert _cli(lake, "symbols", "add", *NVDA).exit_code == 0
    res = _cli(lake, "symbols", "add", *NVDA, "--tick-size", "0.05")
    assert res.exit_code == 2 and "already in the security master with tick_size=0.01 (given 0.05)" in res.text
    declared = _cli(
        lake, "symbols", "add", "SIM1:SIM", "--asset-class", "equity", "--exchange", "X", "--calendar", "XNYS"
    )
    assert declared.exit_code == 2 and "exchange='SIMX' (given 'X')" in declared.text


def test_bad_fields_are_refused_with_the_field_named(lake):
    base = ["--asset-class", "equity", "--exchange", "XNAS", "--calendar", "XNYS"]
    cases = {
        ("NVDA", *base): "expected ROOT:VENUE",
        ("NVDA:US", "--asset-class", "stock", "--exchange", "XNAS", "--calendar", "XNYS"): "asset_class 'stock'",
        ("NVDA:US", "--asset-class", "equity", "--exchange", "XNAS", "--calendar", "NYSE-ISH"): "calendar 'NYSE-ISH'",
        ("NVDA:US", *base, "--currency", "dollars"): "currency 'dollars'",
        ("NVDA:US", *base, "--tick-size", "0"): "tick_size must be > 0",
    }
    for args, message in cases.items():
        res = _cli(lake, "symbols", "add", *args)
        assert res.exit_code == 2 and message in res.text, (args, res.output)
    assert not lake.exists(BRONZE_SECURITY_MASTER)


def test_ingest_accepts_an_added_symbol_and_quarantines_an_unknown_one(lake):
    """The per-instrument check of ingest, with the known symbols `mps ingest` and the flow build (lake included)."""
    assert _cli(lake, "symbols", "add", *NVDA).exit_code == 0
    bars = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 2, 21, tzinfo=UTC)] * 2,
            "tf": ["1d", "1d"],
            "symbol_id": ["NVDA:US", "NOPE:US"],
            "kind": ["trade", "trade"],
            **{c: [48.0, 48.0] for c in ("open", "high", "low", "close")},
            "volume": [1e6, 1e6],
            "vwap": [48.0, 48.0],
            "n_trades": [10, 10],
        }
    )
    from lakehouse.ingest import Ingestor

    known = known_symbols(lake=lake)
    report = Ingestor(lake, lambda: datetime(2024, 1, 3, tzinfo=UTC), known).run(
        [Batch("test", "bars.csv", "b-1", [Chunk(BRONZE_BARS, bars)])]
    )
    assert report.total("rows_written") == 1 and report.total("quarantined") == 1
    assert lake.read(BRONZE_BARS)["symbol_id"].to_list() == ["NVDA:US"]
    assert "NOPE:US" in lake.read(BRONZE_QUARANTINE)["raw"].to_list()[0]


def test_ingest_source_help_lists_the_adapters_parameters():
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "simulator", "--help"], terminal_width=240).output
    assert "Parameters of this source" in out
    for field in adapter("simulator").Params.model_fields:
        assert f"  {field} " in out, field
    assert "simulate only the first N minutes of each session" in out  # a description
    assert "example: mps ingest simulator -P symbols=" in out
    other = runner.invoke(app, ["ingest", "--profile", "local", "tabular", "--help"], terminal_width=240).output
    assert "mapping" in other and "example: mps ingest tabular" in other
    unknown = runner.invoke(app, ["ingest", "nope", "--help"], terminal_width=240)
    assert unknown.exit_code == 0 and "unknown source 'nope'" in unknown.output
    plain = runner.invoke(app, ["ingest", "--help"], terminal_width=240).output
    assert "Parameters of this source" not in plain
