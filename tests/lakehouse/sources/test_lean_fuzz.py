"""Fuzz the LEAN line parser: arbitrary bytes and near-valid lines never crash it, and every line is accounted."""

from __future__ import annotations

import tempfile
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.ingest import Ingestor
from lakehouse.sources import lean
from lakehouse.sources.lean_layouts import market_chunk
from lakehouse.sources.lean_paths import LeanFile
from lakehouse.sources.lean_universe import universe_chunk
from lakehouse.storage import Lake

FILES = [
    LeanFile(Path("t.zip"), "equity", "usa", "tick", "trade", "bac", date(2013, 10, 7)),
    LeanFile(Path("q.zip"), "equity", "usa", "tick", "quote", "bac", date(2013, 10, 7)),
    LeanFile(Path("m.zip"), "equity", "usa", "minute", "quote", "spy", date(2014, 3, 9)),
    LeanFile(Path("d.zip"), "equity", "usa", "daily", "trade", "spy"),
    LeanFile(Path("f.zip"), "forex", "oanda", "tick", "quote", "eurusd", date(2014, 5, 5)),
    LeanFile(Path("c.zip"), "crypto", "bybit", "minute", "trade", "btcusdt", date(2022, 12, 13)),
]

field = st.one_of(
    st.integers(-10, 90_000_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "P", "Q", "nan", "-0", "1e309", "20140606 09:00", "20131301 25:61", "0x1F", " 12 "]),
    st.text(alphabet=st.characters(blacklist_characters=",\n\r"), max_size=8),
)
line = st.one_of(
    st.lists(field, min_size=0, max_size=12).map(",".join), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
)
payload = st.one_of(
    st.lists(line, max_size=30).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")), st.binary(max_size=400)
)


def non_blank_rows(data: bytes) -> set[int]:
    text = data.decode("utf-8", errors="replace")
    return {i + 1 for i, s in enumerate(text.split("\n")) if s.strip(" \t\r")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=st.sampled_from(FILES), data=payload)
def test_market_parser_accounts_for_every_line(f, data):
    chunk = market_chunk(f, data, "America/New_York" if f.asset_class == "equity" else "UTC")
    parsed = set(chunk.data.get_column("_row").to_list())
    rejected = {r.row for r in chunk.rejected}
    assert not parsed & rejected
    assert parsed | rejected == non_blank_rows(data)
    assert chunk.data.get_column("_raw").null_count() == 0
    assert all(r.reason for r in chunk.rejected)
    # A line yields one row (two for a quote bar with both sides); never more.
    per_line = chunk.data.group_by("_row").len().get_column("len")
    assert per_line.max() is None or per_line.max() <= (2 if f.kind == "quote" and f.resolution != "tick" else 1)
    assert chunk.data.schema.get("ts") in (None, pl.Datetime("ns", "UTC"))


@settings(max_examples=150, deadline=None)
@given(data=payload)
def test_universe_parser_never_crashes(data):
    f = LeanFile(Path("u.csv"), "option", "usa", "daily", "universe", "spy", date(2024, 1, 2))
    chunk = universe_chunk(f, data)
    rows = set(chunk.data.get_column("_row").to_list()) | {r.row for r in chunk.rejected}
    assert rows <= non_blank_rows(data)
    assert set(chunk.data.get_column("right").to_list()) <= {"C", "P"}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, min_size=1, max_size=15))
def test_engine_balances_on_fuzzed_files(lines):
    clock = lambda: datetime(2026, 11, 1, tzinfo=UTC)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "equity/usa/tick/bac/20131007_trade.zip"
        path.parent.mkdir(parents=True)
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x.csv", "\n".join(lines).encode("utf-8", "surrogatepass"))
        report = Ingestor(Lake(str(root / "lake")), clock, frozenset({"BAC:US"})).run(
            lean.batches(lean.Params(root=root))
        )
        assert report.balanced
        expected = len(non_blank_rows("\n".join(lines).encode("utf-8", "surrogatepass")))
        if expected:
            assert report.total("rows_read") == expected and not report.failures
        else:
            assert [Path(f.file).name for f in report.failures] == [path.name]
