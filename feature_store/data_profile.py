"""A lake's data profile as Markdown: data dictionary, quality report and sample SQL (``mps profile``).

- ``data_dictionary.md``: every declared table (layer.name, doc, keys, partitions, rows) and its
  columns (type, nullable, doc), from the ``TableSpec`` declarations.
- ``quality.md``: for each bar table, per (symbol, tf): time range, rows, granularity (median step),
  sessions of the exchange calendar with no bar (daily bars) or session days without bars
  (intraday), volume statistics; symbol coverage across bar, trade and quote tables.
- ``sample_sql.md``: queries to run with ``mps sql`` against the tables that hold data.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from lakehouse import calendars
from lakehouse.storage import Lake
from lakehouse.tables import TABLES

BAR_TABLES = ("silver.bars", "bronze.bars")
SYMBOL_TABLES = ("bronze.trades", "bronze.quotes", "bronze.bars", "silver.bars", "gold.features")


def _md_table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "_(none)_\n"
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in frame.iter_rows()]
    return head + "\n".join(rows) + "\n"


def data_dictionary(lake: Lake) -> str:
    """The data dictionary of every declared table, with row counts where the table exists."""
    out = ["# Data dictionary\n"]
    for name in sorted(TABLES):
        spec = TABLES[name]
        info = lake.info(spec)
        rows = f"{info.rows:,} rows, Delta version {info.version}" if info else "not created yet"
        out.append(f"## {name}\n\n{spec.doc}\n\n- keys: {', '.join(spec.keys)}\n")
        out.append(f"- partitioned by: {', '.join(spec.partition_by) or '-'}\n- {rows}\n\n")
        cols = pl.DataFrame(
            {
                "column": [c.name for c in spec.columns],
                "type": [str(c.type) for c in spec.columns],
                "nullable": [c.nullable for c in spec.columns],
                "doc": [c.doc for c in spec.columns],
            }
        )
        out.append(_md_table(cols) + "\n")
    return "".join(out)


def bar_quality(bars: pl.DataFrame, calendar: str) -> pl.DataFrame:
    """Per (symbol, tf): range, rows, granularity, missing calendar sessions, volume statistics."""
    if bars.height == 0:
        return pl.DataFrame()
    stats = (
        bars.sort("symbol_id", "tf", "ts")
        .group_by("symbol_id", "tf", maintain_order=True)
        .agg(
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.len().alias("rows"),
            (pl.col("ts").diff().median().dt.total_seconds()).alias("median_step_s"),
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().unique().alias("_days"),
            pl.col("volume").mean().round(1).alias("volume_mean"),
            pl.col("volume").median().alias("volume_median"),
            (pl.col("volume") == 0).mean().round(4).alias("zero_volume_share"),
        )
    )
    missing, examples = [], []
    for row in stats.iter_rows(named=True):
        first, last = row["first"].date(), row["last"].date()
        try:
            sess = calendars.sessions(calendar, first, last)["session"].unique()
        except (ConfigError, ValueError):
            sess = pl.Series([], dtype=pl.Date)
        gap = sorted(set(sess.to_list()) - set(row["_days"]))
        missing.append(len(gap))
        examples.append(", ".join(d.isoformat() for d in gap[:3]) + (" ..." if len(gap) > 3 else ""))
    return stats.drop("_days").with_columns(
        pl.Series("missing_sessions", missing), pl.Series("missing_examples", examples)
    )


def symbol_coverage(lake: Lake) -> pl.DataFrame:
    """Which symbols appear in which tables (rows per table)."""
    frames = []
    for name in SYMBOL_TABLES:
        spec = TABLES.get(name)
        if spec is None or not lake.exists(spec):
            continue
        counts = lake.read(spec, columns=["symbol_id"]).group_by("symbol_id").len()
        frames.append(counts.rename({"len": name}))
    if not frames:
        return pl.DataFrame()
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f, on="symbol_id", how="full", coalesce=True)
    return out.sort("symbol_id")


def sample_sql(lake: Lake) -> str:
    """Sample queries for ``mps sql`` over the tables that exist."""
    q = ['# Sample SQL\n\nRun with `mps sql "..."` (DuckDB, every table registered as `layer.name`).\n\n']
    have = {n for n, s in TABLES.items() if lake.exists(s)}
    samples = [
        (
            "silver.bars",
            "Daily closes of one symbol",
            "SELECT ts, close, volume FROM silver.bars WHERE symbol_id = 'AAPL:US' AND tf = '1d' AND adjustment = 'raw' ORDER BY ts DESC LIMIT 10",
        ),
        (
            "silver.bars",
            "Bars per symbol and timeframe",
            "SELECT symbol_id, tf, count(*) AS bars, min(ts), max(ts) FROM silver.bars GROUP BY ALL ORDER BY ALL",
        ),
        (
            "bronze.trades",
            "Trades per symbol and day",
            "SELECT symbol_id, CAST(to_timestamp(ts / 1e9) AS DATE) AS day, count(*) FROM bronze.trades GROUP BY ALL ORDER BY ALL",
        ),
        (
            "gold.features",
            "Latest features per symbol",
            "SELECT * FROM gold.features WHERE feature_set = 'bar_v1' QUALIFY row_number() OVER (PARTITION BY symbol_id ORDER BY ts DESC) = 1",
        ),
        (
            "gold.labels",
            "Label bucket histogram",
            "SELECT horizon, bucket, count(*) FROM gold.labels GROUP BY ALL ORDER BY ALL",
        ),
        (
            "bronze.quarantine",
            "Quarantined rows by reason",
            'SELECT "table", reason, count(*) FROM bronze.quarantine GROUP BY ALL ORDER BY 3 DESC',
        ),
    ]
    for table, title, sql in samples:
        if table in have:
            q.append(f"## {title}\n\n```sql\n{sql}\n```\n\n")
    return "".join(q)


def write_profile(lake: Lake, out: Path, calendar: str = "XNYS", as_of: date | None = None) -> list[Path]:
    """Write the three Markdown files under ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# Quality report\n\n", f"Gaps are measured against the {calendar} calendar.\n\n"]
    for name in BAR_TABLES:
        spec = TABLES[name]
        if not lake.exists(spec):
            continue
        cols = ["symbol_id", "tf", "ts", "volume"]
        bars = lake.read(spec, columns=cols + (["adjustment"] if name == "silver.bars" else []))
        if name == "silver.bars":
            bars = bars.filter(pl.col("adjustment") == "raw").drop("adjustment")
        parts.append(f"## {name}\n\n" + _md_table(bar_quality(bars, calendar)) + "\n")
    parts.append("## Symbol coverage (rows per table)\n\n" + _md_table(symbol_coverage(lake)))
    files = {
        "data_dictionary.md": data_dictionary(lake),
        "quality.md": "".join(parts),
        "sample_sql.md": sample_sql(lake),
    }
    paths = []
    for name, text in files.items():
        path = out / name
        path.write_text(text)
        paths.append(path)
    return paths
