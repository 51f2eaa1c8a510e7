"""What ``make demo`` reports, read back from the lake, the Prefect server and the scorer; and its rendering.

Every figure comes from what the pipeline persisted (bronze, silver and gold tables, the Prefect
API, the scorer's /metrics), not from in-memory values of the flows, so the report shows what a
user of the platform would find.

Reconciliation accuracy needs each vendor's own bars, which are not stored: they are rebuilt from
bronze ticks (trades; quote mids for a vendor with no trades), shifted by the clock offsets the
flow stored in silver.clock_offsets. A vendor's bar counts as flagged when the consensus weighed
it (``consensus.candidates``) and the silver bar does not list that vendor in ``quality.sources``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

import polars as pl
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from lakehouse import freshness as fr
from lakehouse.reconcile.bars import build_bars
from lakehouse.reconcile.pipeline import quotes_as_ticks
from lakehouse.reconcile.report import consensus_error, outlier_scores
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import (
    BRONZE_INGEST_LOG,
    BRONZE_QUARANTINE,
    BRONZE_QUOTES,
    BRONZE_SIM_EVENTS,
    BRONZE_SIM_TRUTH,
    BRONZE_TRADES,
    GOLD_SIGNALS,
    SILVER_BARS,
    SILVER_FRESHNESS,
    SILVER_QUALITY_RESULTS,
    TABLES,
)

SLOT = ["source", "symbol_id", "ts"]


@dataclass
class DemoReport:
    """The facts the demo establishes; rendered as rich tables and as markdown."""

    sections: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, title: str, frame: pl.DataFrame) -> None:
        self.sections.append((title, frame))


class Steps:
    """Print a rule per step and record how long each took (into the report's timings)."""

    def __init__(self, console: Console, report: DemoReport) -> None:
        self.console, self.report, self.t0 = console, report, time.perf_counter()

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self.console.rule(f"[bold]{title}[/]  (+{time.perf_counter() - self.t0:.0f}s)")
        t = time.perf_counter()
        yield
        self.report.timings[title] = round(time.perf_counter() - t, 1)
        self.console.print(f"  [dim]{title}: {self.report.timings[title]:.1f}s[/]")


# ---- bronze ---------------------------------------------------------------------------------------
def ingest_account(lake: Lake, source: str) -> pl.DataFrame:
    """Per-table account of ``source``'s batches from bronze.ingest_log."""
    log = lake.read(BRONZE_INGEST_LOG, filter=pc.field("source") == source)
    return (
        log.group_by("table").agg(pl.col("rows_read", "rows_written", "duplicates", "quarantined").sum()).sort("table")
    )


def vendor_ticks(lake: Lake, start: datetime, end: datetime, symbols: list[str]) -> pl.DataFrame:
    """Bronze ticks of the window as the reconciliation reads them: trades, else quote mids."""
    flt = (pc.field("ts") <= ts_value(end)) & (pc.field("ts") > ts_value(start)) & pc.field("symbol_id").isin(symbols)
    trades = lake.read(BRONZE_TRADES, ["source", "symbol_id", "ts", "price", "size"], flt)
    mids = quotes_as_ticks(lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "ask"], flt))
    mids = mids.join(trades.select("source", "symbol_id").unique(), on=["source", "symbol_id"], how="anti")
    return pl.concat([trades, mids.cast(trades.schema)])


# ---- silver ---------------------------------------------------------------------------------------
def silver_bars(lake: Lake, timeframes: list[str]) -> pl.DataFrame:
    """The raw consensus bars of ``timeframes``."""
    return lake.read(SILVER_BARS, filter=pc.field("tf").isin(timeframes) & (pc.field("adjustment") == "raw"))


def bars_summary(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars, stale bars and mean contributing vendors per timeframe."""
    q = pl.col("quality").struct
    return (
        bars.group_by("tf")
        .agg(
            pl.len().alias("bars"),
            q.field("stale").sum().alias("stale"),
            q.field("n_src").mean().alias("mean_sources"),
            q.field("outlier_frac").mean().alias("mean_outlier_frac"),
        )
        .sort("tf")
    )


def consensus_observations(consensus: pl.DataFrame) -> pl.DataFrame:
    """Each vendor bar the consensus weighed, ``outlier`` when it was voted out (``quality.outliers``)."""
    q = pl.col("quality").struct
    sides = [
        consensus.select("symbol_id", "ts", q.field(field).alias("source"))
        .explode("source")
        .drop_nulls("source")
        .with_columns(pl.lit(field == "outliers").alias("outlier"))
        for field in ("sources", "outliers")
    ]
    return pl.concat(sides).select(*SLOT, pl.lit(True).alias("delivered"), "outlier")


def accuracy(
    lake: Lake, bars: pl.DataFrame, ticks: pl.DataFrame, calendars: dict[str, str], timeframes: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Close errors vs the simulator's true price, and outlier flags vs its injected bad prints, per timeframe."""
    truth = lake.read(BRONZE_SIM_TRUTH, ["symbol_id", "ts", "price"])
    events = lake.read(BRONZE_SIM_EVENTS)
    errors, outliers = [], []
    for tf in timeframes:
        cons = bars.filter(pl.col("tf") == tf)
        errors.append(
            consensus_error(cons, build_bars(ticks, tf, calendars).bars, truth).select(pl.lit(tf).alias("tf"), pl.all())
        )
        seen = consensus_observations(cons)
        outliers.append({"tf": tf, **outlier_scores(seen, events, tf, calendars)})
    return pl.concat(errors), pl.DataFrame(outliers)


def freshness_summary(
    lake: Lake, trades: pl.DataFrame, start: datetime, end: datetime, stale_after_s: float
) -> tuple[pl.DataFrame, dict]:
    """silver.freshness per vendor at its latest as_of, and the share of open time each vendor went stale."""
    fresh = lake.read(SILVER_FRESHNESS)
    fresh = fresh.filter(pl.col("as_of") == pl.col("as_of").max())
    # sampled on price changes: a vendor repeating its last price is as stale as a silent one
    rates = fr.stale_rate(
        fr.change_times(trades, ["price"]), start, end, fr.FreshnessThresholds(default_s=stale_after_s)
    )
    per_vendor = (
        fresh.group_by("source")
        .agg(
            pl.len().alias("symbols"),
            pl.col("stale").sum().alias("stale_now"),
            (pl.col("age_ms").max() / 1e3).alias("max_age_s"),
        )
        .join(
            rates.group_by("source").agg(
                (pl.col("stale_ms").sum() / pl.col("open_ms").sum()).alias(f"open_time_stale_{stale_after_s:g}s")
            ),
            on="source",
            how="left",
        )
        .sort("source")
    )
    summary = fr.stale_summary(fresh, rates)
    return per_vendor, {
        "freshness_as_of": fresh["as_of"].max(),
        "freshness_pairs": int(summary["pairs"]),
        "stale_pairs": int(summary["stale_pairs"]),
        "time_stale_fraction": summary.get("time_stale_fraction", 0.0),
    }


def quality_summary(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The gate's expectation results on silver.bars, and its quarantine by reason."""
    results = lake.read(SILVER_QUALITY_RESULTS, filter=pc.field("table") == SILVER_BARS.qualified)
    quarantined = lake.read(
        BRONZE_QUARANTINE, ["source", "table", "row", "reason", "batch_id"], pc.field("source") == "quality"
    )
    expectations = results.select("expectation", "success", "element_count", "unexpected_count").sort(
        "success", "expectation"
    )
    return expectations, quarantined


def reconcile_line(f: dict) -> str:
    """One console line on the gate, the consensus accuracy and freshness."""
    return (
        f"  quality gate: {f['gate_rows_in']:,} bars in, {f['gate_passed']:,} passed, {f['gate_quarantined']:,}"
        f" quarantined; docs {f['quality_docs']}\n  consensus close RMSE vs truth (bps): "
        f"{cell(f['consensus_rmse_bps'])}; outlier precision {cell(f['outlier_precision'])}, recall "
        f"{cell(f['outlier_recall'])}; stale share of open time {f['time_stale_fraction']:.2%}"
    )


# ---- gold, scorer, Prefect --------------------------------------------------------------------------
def features_summary(feats: pl.DataFrame, names: tuple[str, ...]) -> pl.DataFrame:
    """Mean, std, min and max of each feature, in the model's input order."""
    return pl.DataFrame(
        [
            {"feature": n, "mean": feats[n].mean(), "std": feats[n].std(), "min": feats[n].min(), "max": feats[n].max()}
            for n in names
        ]
    )


def scrape_metrics(url: str) -> dict[str, float]:
    """Read the scorer's Prometheus counters and its mean receive -> publish latency."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    dead = sum(v for k, v in values.items() if k.startswith("mps_scorer_deadletters_total"))
    count = values.get("mps_scorer_latency_seconds_count", 0.0)
    return {
        "scorer_updates": int(values.get("mps_scorer_updates_total", 0)),
        "scorer_signals": int(values.get("mps_scorer_signals_total", 0)),
        "scorer_batches": int(values.get("mps_scorer_batches_total", 0)),
        "scorer_deadletters": int(dead),
        "scorer_latency_mean_us": 1e6 * values.get("mps_scorer_latency_seconds_sum", 0.0) / count if count else 0.0,
        "scorer_latency_p99_le_s": _histogram_quantile(values, 0.99),
    }


def _histogram_quantile(values: dict[str, float], q: float) -> float:
    """The smallest latency bucket bound holding at least ``q`` of the observations."""
    buckets = sorted(
        (float(k.split('"')[1]), v)
        for k, v in values.items()
        if k.startswith("mps_scorer_latency_seconds_bucket") and '"+Inf"' not in k
    )
    total = values.get("mps_scorer_latency_seconds_count", 0.0)
    return next((le for le, n in buckets if total and n >= q * total), float("inf"))


async def wait_for_rows(lake: Lake, expected: int, timeout_s: float) -> int:
    """Poll gold.signals until it holds ``expected`` rows or the timeout passes; return the count."""
    deadline, rows = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        info = lake.info(GOLD_SIGNALS)
        rows = info.rows if info else 0
        if rows >= expected:
            break
        await asyncio.sleep(0.5)
    return rows


def flow_runs(ui_url: str | None) -> pl.DataFrame:
    """The flow runs the Prefect server recorded (this process must be connected to it)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        names = {f.id: f.name for f in client.read_flows()}
    return pl.DataFrame(
        [
            {
                "flow": names.get(r.flow_id, "?"),
                "run": r.name,
                "state": r.state_name,
                "run_time_s": r.total_run_time.total_seconds(),
                "url": f"{ui_url}/runs/flow-run/{r.id}" if ui_url else str(r.id),
            }
            for r in sorted(runs, key=lambda r: str(r.expected_start_time))
        ]
    )


def signals_summary(lake: Lake, report: DemoReport, cost_bps: float) -> None:
    """Bronze row counts and quarantine reasons, and what landed in gold.signals."""
    bronze = [(s.qualified, i.rows) for s in TABLES.values() if s.layer == "bronze" and (i := lake.info(s))]
    report.add("Bronze tables", pl.DataFrame(bronze, schema=["table", "rows"], orient="row"))
    quarantine = lake.read(BRONZE_QUARANTINE, ["source", "table", "reason"])
    report.add(
        "Quarantine by reason",
        quarantine.group_by("source", "table", "reason").len().sort("len", descending=True)
        if quarantine.height
        else pl.DataFrame({"reason": ["(none)"], "len": [0]}),
    )
    signals = lake.read(GOLD_SIGNALS)
    report.facts["gold_signals_rows"] = signals.height
    if signals.height == 0:
        return
    gross = pl.col("payload").str.json_path_match("$.expected_return_gross").cast(pl.Float64) * 1e4
    report.add(
        "Signals per symbol (edge = expected log return before costs, bps)",
        signals.group_by("symbol_id")
        .agg(
            pl.len().alias("signals"),
            pl.col("prob_up").mean().alias("mean_p_up"),
            gross.abs().mean().alias("mean_abs_edge_bps"),
            gross.abs().max().alias("max_abs_edge_bps"),
            pl.col("size").abs().mean().alias("mean_abs_size"),
            pl.col("guard").is_not_null().sum().alias("guarded"),
            pl.col("horizon").first(),
        )
        .sort("symbol_id"),
    )
    step = signals.height // 6 + 1  # not a multiple of the symbol count, so the examples vary
    report.add(
        "Example signals (60 s horizon; log-return quantiles in bps; size as NAV fraction)",
        signals.sort("ts", "symbol_id")
        .gather_every(step, offset=step // 2)
        .select(
            pl.col("ts").dt.strftime("%H:%M:%S").alias("time"),
            pl.col("symbol_id").alias("symbol"),
            pl.col("prob_up").alias("p_up"),
            gross.alias("edge"),
            *((pl.col(c) * 1e4).alias(c) for c in ("q05", "q50", "q95")),
            "kelly",
            "size",
            "guard",
        ),
    )
    report.facts.update(
        cost_bps=cost_bps,
        mean_prob_up=float(cast(float, signals["prob_up"].mean())),
        signals_with_edge_over_cost=int(signals.select((gross.abs() > cost_bps).sum()).item()),
    )


# ---- rendering --------------------------------------------------------------------------------------
def cell(value) -> str:
    """Format one value for a table cell or a fact line."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.3e}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(report: DemoReport, console: Console, hints: list[str]) -> str:
    """Print the report as rich tables and return it as markdown."""
    md = ["# MPS demo report", ""]
    timings = pl.DataFrame({"step": list(report.timings), "seconds": list(report.timings.values())})
    for title, frame in [*report.sections, ("Step timings (s)", timings)]:
        table = Table(title=title, title_justify="left")
        for c in frame.columns:
            table.add_column(c)
        for row in frame.iter_rows():
            table.add_row(*(cell(v) for v in row))
        console.print(table)
        md += [f"## {title}", "", "| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
        md += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()] + [""]
    facts = Table(title="Facts", title_justify="left")
    facts.add_column("fact")
    facts.add_column("value")
    md += ["## Facts", ""]
    for key, value in report.facts.items():
        facts.add_row(key, cell(value))
        md.append(f"- {key}: {cell(value)}")
    console.print(facts)
    md += ["", "Try:", ""]
    for hint in hints:
        console.print(f"Try:  {hint}")
        md.append(f"    {hint}")
    return "\n".join(md + [""])


def hints(lake_root: str, quality_docs: str, prefect_home: Path, demo_dir: Path | None = None) -> list[str]:
    """What to try next: SQL on the signals, the quality site, the Prefect UI over the demo's runs, and
    (given the demo directory) the MLflow UI over its registry and the HTTP API on its profile."""
    query = (
        "SELECT symbol_id, count(*) AS n, avg(prob_up) AS p_up, avg(abs(size)) AS size "
        "FROM gold.signals GROUP BY 1 ORDER BY 1"
    )
    out = [
        f'.venv/bin/mps sql --lake {lake_root} "{query}"',
        f"open {quality_docs}",
        f"PREFECT_HOME={prefect_home} .venv/bin/prefect server start  (then http://127.0.0.1:4200: the demo's runs)",
    ]
    if demo_dir is not None:
        from core.profile import load_profile

        api = load_profile(str(demo_dir / "profile.yaml")).api
        out += [
            f".venv/bin/mlflow ui --backend-store-uri sqlite:///{demo_dir / 'mlflow.db'}  (runs, the registry, the champion alias)",
            f"MPS_API_KEYS=demo:$(openssl rand -hex 32) .venv/bin/mps api --profile {demo_dir / 'profile.yaml'}"
            f"  (docs at http://{api.host}:{api.port}/docs)",
        ]
    return out


def write(report: DemoReport, demo_dir: Path, console: Console, next_steps: list[str]) -> None:
    """Print the report and write it to ``report.md``, with every fact and timing in ``facts.json``."""
    (demo_dir / "report.md").write_text(render(report, console, next_steps))
    (demo_dir / "facts.json").write_text(
        json.dumps({**report.facts, "timings_s": report.timings}, indent=2, default=str)
    )
    console.print(f"report written to {demo_dir / 'report.md'}")
