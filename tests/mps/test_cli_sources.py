"""`mps sources` shows every adapter's parameters with descriptions and an example."""

from __future__ import annotations

from typer.testing import CliRunner

from lakehouse.sources.registry import SOURCES, adapter
from mps.cli import app


def test_sources_lists_every_parameter_of_every_adapter():
    out = CliRunner().invoke(app, ["sources"], terminal_width=240).output
    for name in SOURCES:
        assert f"\n{name}: " in "\n" + out, name
        for field in adapter(name).Params.model_fields:
            assert f"  {field} " in out, (name, field)
    assert out.count("  example: mps ingest ") == len(SOURCES)
    assert "message files, directories or glob patterns" in out  # a description


def test_one_source_and_an_unknown_one():
    runner = CliRunner()
    assert "mapping" in runner.invoke(app, ["sources", "tabular"], terminal_width=240).output
    bad = runner.invoke(app, ["sources", "nope"])
    assert bad.exit_code == 2 and "unknown source 'nope'" in bad.output
