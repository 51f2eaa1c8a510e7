"""``make demo``: the whole pipeline on the embedded default, step by step, then a report.

    .venv/bin/python -m mps.demo [--tiny]

1. a fresh lake under ``<state_dir>/demo/lake`` (profile ``local``; other state is left alone);
2. ingest the multi-vendor simulator into bronze (every row accounted for);
3. reconcile the vendors into silver 1s and 1m consensus bars behind the quality gate, write
   silver.freshness, and score the consensus against the simulator's ground truth;
4. compute the tick feature set ``tick_v1`` from silver 1s bars into gold.tick_features;
5. stream: NATS from the wheel, the fixture tick model as champion, the Rust scorer, the signal
   sink into gold.signals; replay the features as FeatureUpdates and wait for every signal;
6. print the report and write it to ``<state_dir>/demo/report.md``.

Reconciliation calls the reconcile flow's tasks and domain functions directly, not the Prefect
flow: Prefect's ephemeral API server needs 20-90 s to start on a busy 2-core machine (it timed out
at the default 20 s while this was written), and the flow does not run the quality gate yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from lakehouse.ingest import IngestReport, utc_clock
from lakehouse.storage import Lake
from lakehouse.tables import (BRONZE_QUARANTINE, BRONZE_QUOTES, BRONZE_SIM_EVENTS, BRONZE_SIM_TRUTH, GOLD_SIGNALS,
                              SILVER_BARS, SILVER_FRESHNESS, TABLES)
from mps.settings import REPO_ROOT, load_profile

UTC = timezone.utc
MODEL = REPO_ROOT / "contracts" / "models" / "tick_tiny" / "v2" / "tick_tiny.onnx"
SIZING = REPO_ROOT / "contracts" / "sizing.json"


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo market is and how patiently the streaming step waits."""

    symbols: tuple[str, ...] = ("SIM1:SIM", "SIM2:SIM", "SIM3:SIM")
    start: date = date(2026, 1, 5)
    session_minutes: int = 60
    trades_per_day: int = 50_000
    seed: int = 7
    timeframes: tuple[str, ...] = ("1s", "1m")
    signal_timeout_s: float = 120.0
    stale_after_s: float = 10.0   # open-market seconds without a new trade price before a tick feed is stale

    @property
    def window(self) -> tuple[datetime, datetime]:
        start = datetime.combine(self.start, datetime.min.time(), UTC)
        return start, start + timedelta(days=1)


TINY = DemoConfig(symbols=("SIM1:SIM", "SIM2:SIM"), session_minutes=6, trades_per_day=30_000, signal_timeout_s=60.0)


@dataclass
class DemoReport:
    """The facts the demo establishes; rendered as rich tables and as markdown."""

    sections: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def add(self, title: str, frame: pl.DataFrame) -> None:
        self.sections.append((title, frame))


# ---- steps --------------------------------------------------------------------------------------
def fresh_lake(state_dir: Path) -> tuple[Lake, Path]:
    """Wipe and recreate ``<state_dir>/demo`` and return its lake."""
    demo_dir = state_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    (demo_dir / "lake").mkdir(parents=True)
    return Lake(str(demo_dir / "lake")), demo_dir


def ingest(lake: Lake, cfg: DemoConfig, report: DemoReport) -> IngestReport:
    """Ingest the simulator into bronze and record the per-table account."""
    from lakehouse.run_source import run_source

    params = {"symbols": list(cfg.symbols), "start": cfg.start.isoformat(), "session_minutes": cfg.session_minutes,
              "trades_per_day": cfg.trades_per_day, "seed": cfg.seed}
    result = run_source(lake, "simulator", params, utc_clock)
    accounts = pl.DataFrame([a.__dict__ for a in result.accounts])
    totals = (accounts.group_by("table").agg(pl.col("rows_read", "rows_written", "duplicates", "quarantined").sum())
              .sort("table"))
    report.add("Ingest account (rows_read = rows_written + duplicates + quarantined)", totals)
    report.facts.update(accounts_balanced=result.balanced, ingest_failures=len(result.failures),
                        rows_read=result.total("rows_read"), rows_written=result.total("rows_written"))
    return result


def reconcile(lake: Lake, cfg: DemoConfig, report: DemoReport) -> None:
    """Reconcile the window into silver bars (through the quality gate) and score them against truth."""
    from flows.reconcile import read_inputs, write_outputs
    from lakehouse.quality.gate import gate
    from lakehouse.reconcile.pipeline import ReconcileConfig, reconcile_window
    from lakehouse.security_master import load_instruments

    start, end = cfg.window
    ticks, vendor_bars, stats = read_inputs.fn(lake, start, end, list(cfg.symbols))
    calendars = {i.symbol_id: i.calendar for i in load_instruments()}
    result = reconcile_window(ticks, vendor_bars, calendars, start, end, stats,
                              ReconcileConfig(timeframes=cfg.timeframes))
    passed, gated = gate(lake, SILVER_BARS, result.bars, f"demo-reconcile-{start:%Y%m%d}", utc_clock)
    result.bars = passed
    written = write_outputs.fn(lake, result, start, end, list(cfg.timeframes), list(cfg.symbols))
    report.facts.update(gate_rows_in=gated.rows_in, gate_passed=gated.rows_passed,
                        gate_quarantined=gated.rows_quarantined, gate_failures=gated.failures)
    report.add("Silver writes", pl.DataFrame({"table": list(written), "rows": list(written.values())}))
    report.add("Silver bars per timeframe", lake.read(SILVER_BARS, ["tf", "quality"]).group_by("tf").agg(
        pl.len().alias("bars"), pl.col("quality").struct.field("stale").sum().alias("stale"),
        pl.col("quality").struct.field("n_src").mean().alias("mean_sources")).sort("tf"))
    score_reconciliation(lake, ticks, result, calendars, cfg, report)


def score_reconciliation(lake: Lake, ticks: pl.DataFrame, result, calendars: dict[str, str], cfg: DemoConfig,
                         report: DemoReport) -> None:
    """Consensus close error vs the true price, and outlier precision/recall vs injected bad prints."""
    from lakehouse.reconcile.bars import build_bars
    from lakehouse.reconcile.report import consensus_error, outlier_scores

    truth = lake.read(BRONZE_SIM_TRUTH, ["symbol_id", "ts", "price"])
    events = lake.read(BRONZE_SIM_EVENTS)
    errors, outliers = [], []
    for tf in cfg.timeframes:
        bars = result.bars.filter(pl.col("tf") == tf)
        errors.append(consensus_error(bars, build_bars(ticks, tf, calendars).bars, truth)
                      .select(pl.lit(tf).alias("tf"), pl.all()))
        outliers.append({"tf": tf, **outlier_scores(result.observations[tf], events, tf, calendars)})
    errs = pl.concat(errors)
    report.add("Close vs true price (bps): consensus and each vendor alone", errs)
    report.add("Outlier flags vs injected bad prints", pl.DataFrame(outliers))
    cons = errs.filter(pl.col("series") == "consensus")
    report.facts["consensus_rmse_bps"] = dict(zip(cons["tf"], cons["rmse_bps"]))


def freshness(lake: Lake, cfg: DemoConfig, report: DemoReport) -> None:
    """Write silver.freshness at the end of the simulated session and measure the stale rate."""
    from lakehouse import freshness as fr
    from lakehouse.tables import BRONZE_TRADES

    trades = lake.read(BRONZE_TRADES, ["symbol_id", "source", "ts", "price"])
    session_start, as_of = trades["ts"].min(), trades["ts"].max()
    thresholds = fr.FreshnessThresholds(default_s=cfg.stale_after_s)
    fresh = fr.freshness(fr.last_seen(lake, as_of), as_of, thresholds)
    fr.write_freshness(lake, fresh.select(SILVER_FRESHNESS.column_names))
    # sampled on price changes: a vendor repeating its last price is as stale as a silent one
    rates = fr.stale_rate(fr.change_times(trades, ["price"]), session_start, as_of, thresholds)
    summary = fr.stale_summary(fresh, rates)
    report.add(f"Freshness per vendor (share of open time with no new price for {cfg.stale_after_s:g} s)", rates.group_by("source").agg(
        pl.col("stale_ms").sum(), pl.col("open_ms").sum()).with_columns(
        (pl.col("stale_ms") / pl.col("open_ms")).alias("stale_fraction")).sort("source"))
    report.facts.update(freshness_pairs=int(summary["pairs"]), stale_pairs=int(summary["stale_pairs"]),
                        time_stale_fraction=summary.get("time_stale_fraction", 0.0))


def featurize(lake: Lake, cfg: DemoConfig, report: DemoReport) -> pl.DataFrame:
    """Compute tick_v1 from silver 1s bars and bronze quotes; write gold.tick_features."""
    from feature_store.tick_features import FEATURE_NAMES, GOLD_TICK_FEATURES, features_from_silver, write_features

    bars = lake.read(SILVER_BARS, filter=(pc.field("tf") == "1s") & (pc.field("adjustment") == "raw"))
    quotes = lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "bid_size", "ask", "ask_size"])
    feats = features_from_silver(bars, quotes)
    write_features(lake, feats)
    summary = pl.DataFrame([{"feature": n, "mean": feats[n].mean(), "std": feats[n].std(), "min": feats[n].min(),
                             "max": feats[n].max()} for n in FEATURE_NAMES])
    report.add(f"Tick features {GOLD_TICK_FEATURES.qualified}: {feats.height:,} rows (model input order)", summary)
    report.facts["feature_rows"] = feats.height
    return feats


def replay_sizing(demo_dir: Path) -> Path:
    """The contract's sizing config with the staleness guard off: replayed history is old by design."""
    cfg = json.loads(SIZING.read_text())
    cfg["max_staleness_ms"] = 0
    path = demo_dir / "sizing_replay.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


async def stream(lake: Lake, feats: pl.DataFrame, demo_dir: Path, cfg: DemoConfig, console: Console,
                 report: DemoReport) -> None:
    """Replay the features through NATS and the Rust scorer; land every signal in gold.signals."""
    import nats

    from feature_store.messages import FeaturePublisher, ensure_streams, put_champion
    from feature_store.scorer_process import ScorerProcess
    from feature_store.signal_sink import run_sink
    from feature_store.tick_features import check_model_features, feature_updates
    from mps.nats_server import NatsServer
    from training.onnx_export import champion_pointer, read_metadata

    meta = read_metadata(MODEL)
    check_model_features(meta.feature_set, meta.feature_names)
    updates = list(feature_updates(feats))
    server, scorer, nc, sink, stop = NatsServer(store_dir=demo_dir / "nats"), None, None, None, asyncio.Event()
    try:
        server.start()
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await put_champion(js, champion_pointer(MODEL, meta, time.time_ns()))
        scorer = ScorerProcess(server.url, model_name=meta.model_name, sizing=replay_sizing(demo_dir),
                               log_path=demo_dir / "scorer.log").start()
        console.print(f"  NATS {server.url}, scorer {scorer.url} serving {meta.model_name} v{meta.model_version}")
        sink = asyncio.create_task(run_sink(server.url, lake, stop))
        publisher, t0 = FeaturePublisher(nc, jetstream=True), time.perf_counter()
        for update in updates:
            await publisher.publish(update)
        console.print(f"  published {len(updates):,} FeatureUpdates in {time.perf_counter() - t0:.1f}s")
        stored = await wait_for_rows(lake, len(updates), cfg.signal_timeout_s)
        console.print(f"  gold.signals holds {stored:,} rows after {time.perf_counter() - t0:.1f}s")
        metrics = scrape_metrics(scorer.url)
    finally:  # stop everything, in reverse order, whatever failed
        stop.set()
        try:
            sink_stats = await asyncio.wait_for(sink, 30) if sink is not None else None
        finally:
            exit_code = scorer.stop() if scorer is not None else None
            try:
                if nc is not None:
                    await nc.close()
            finally:
                server.stop()
    report.facts.update(updates_published=len(updates), signals_stored=stored, scorer_exit=exit_code,
                        sink_received=sink_stats.received if sink_stats else 0, **metrics)


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
    return {"scorer_updates": int(values.get("mps_scorer_updates_total", 0)),
            "scorer_signals": int(values.get("mps_scorer_signals_total", 0)),
            "scorer_batches": int(values.get("mps_scorer_batches_total", 0)), "scorer_deadletters": int(dead),
            "scorer_latency_mean_us": 1e6 * values.get("mps_scorer_latency_seconds_sum", 0.0) / count if count else 0.0,
            "scorer_latency_p99_le_s": _histogram_quantile(values, 0.99)}


def _histogram_quantile(values: dict[str, float], q: float) -> float:
    """The smallest latency bucket bound holding at least ``q`` of the observations."""
    buckets = sorted((float(k.split('"')[1]), v) for k, v in values.items()
                     if k.startswith("mps_scorer_latency_seconds_bucket") and '"+Inf"' not in k)
    total = values.get("mps_scorer_latency_seconds_count", 0.0)
    return next((le for le, n in buckets if total and n >= q * total), float("inf"))


def summarize(lake: Lake, report: DemoReport) -> None:
    """Bronze row counts and quarantine reasons, and what landed in gold.signals."""
    bronze = [(s.qualified, i.rows) for s in TABLES.values() if s.layer == "bronze" and (i := lake.info(s))]
    report.add("Bronze tables", pl.DataFrame(bronze, schema=["table", "rows"], orient="row"))
    quarantine = lake.read(BRONZE_QUARANTINE, ["source", "table", "reason"])
    report.add("Quarantine by reason", quarantine.group_by("source", "table", "reason").len().sort("len", descending=True)
               if quarantine.height else pl.DataFrame({"reason": ["(none)"], "len": [0]}))
    signals = lake.read(GOLD_SIGNALS)
    report.facts["gold_signals_rows"] = signals.height
    if signals.height == 0:
        return
    gross = pl.col("payload").str.json_path_match("$.expected_return_gross").cast(pl.Float64) * 1e4
    report.add("Signals per symbol (edge = expected log return before costs, bps)", signals.group_by("symbol_id").agg(
        pl.len().alias("signals"), pl.col("prob_up").mean().alias("mean_p_up"),
        gross.abs().mean().alias("mean_abs_edge_bps"), gross.abs().max().alias("max_abs_edge_bps"),
        pl.col("size").abs().mean().alias("mean_abs_size"), pl.col("guard").is_not_null().sum().alias("guarded"),
        pl.col("horizon").first()).sort("symbol_id"))
    step = signals.height // 6 + 1  # not a multiple of the symbol count, so the examples vary
    report.add("Example signals (60 s horizon; log-return quantiles in bps; size as NAV fraction)",
               signals.sort("ts", "symbol_id").gather_every(step, offset=step // 2).select(
                   pl.col("ts").dt.strftime("%H:%M:%S").alias("time"), pl.col("symbol_id").alias("symbol"),
                   pl.col("prob_up").alias("p_up"), gross.alias("edge"),
                   *((pl.col(c) * 1e4).alias(c) for c in ("q05", "q50", "q95")), "kelly", "size", "guard"))
    cost = json.loads(SIZING.read_text())
    report.facts["cost_bps"] = cost["fee_bps"] + cost["slippage_bps"]
    report.facts["signals_with_edge_over_cost"] = int(signals.select((gross.abs() > report.facts["cost_bps"]).sum()).item())
    report.facts["mean_prob_up"] = float(signals["prob_up"].mean())


# ---- rendering ----------------------------------------------------------------------------------
def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.3e}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(report: DemoReport, console: Console, lake: Lake) -> str:
    """Print the report as rich tables and return it as markdown."""
    md = ["# MPS demo report", ""]
    for title, frame in report.sections:
        table = Table(title=title, title_justify="left")
        for c in frame.columns:
            table.add_column(c)
        for row in frame.iter_rows():
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
        md += [f"## {title}", "", "| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
        md += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()] + [""]
    facts = Table(title="Facts", title_justify="left")
    facts.add_column("fact")
    facts.add_column("value")
    md += ["## Facts", ""]
    for key, value in report.facts.items():
        facts.add_row(key, _cell(value))
        md.append(f"- {key}: {_cell(value)}")
    console.print(facts)
    query = ("SELECT symbol_id, count(*) AS n, avg(prob_up) AS p_up, avg(abs(size)) AS size "
             "FROM gold.signals GROUP BY 1 ORDER BY 1")
    hint = f'.venv/bin/mps sql --lake {lake.root} "{query}"'
    console.print(f"\nTry:  {hint}")
    md += ["", "Try:", "", f"    {hint}", ""]
    return "\n".join(md)


# ---- driver -------------------------------------------------------------------------------------
def run_demo(cfg: DemoConfig, state_dir: Path, console: Console) -> DemoReport:
    """Run every step in order; return the report (also written to ``<state_dir>/demo/report.md``)."""
    report, t0 = DemoReport(), time.perf_counter()

    def step(text: str) -> None:
        console.rule(f"[bold]{text}[/]  (+{time.perf_counter() - t0:.0f}s)")

    step("1. fresh demo lake")
    lake, demo_dir = fresh_lake(state_dir)
    console.print(f"  {lake.root}")
    step("2. ingest the simulator into bronze")
    result = ingest(lake, cfg, report)
    console.print(f"  read {result.total('rows_read'):,} rows, wrote {result.total('rows_written'):,}, "
                  f"quarantined {result.total('quarantined'):,}; balanced: {result.balanced}")
    step("3. reconcile into silver (quality gate, freshness, accuracy vs truth)")
    reconcile(lake, cfg, report)
    freshness(lake, cfg, report)
    f = report.facts
    console.print(f"  quality gate: {f['gate_rows_in']:,} bars in, {f['gate_passed']:,} passed, "
                  f"{f['gate_quarantined']:,} quarantined; consensus close RMSE vs truth (bps): "
                  + ", ".join(f"{tf} {v:.2f}" for tf, v in f["consensus_rmse_bps"].items())
                  + f"; stale share of open time {f['time_stale_fraction']:.2%}")
    step("4. tick features tick_v1 into gold")
    feats = featurize(lake, cfg, report)
    console.print(f"  {feats.height:,} feature rows for {feats['symbol_id'].n_unique()} symbols")
    step("5. stream through NATS and the Rust scorer into gold.signals")
    asyncio.run(stream(lake, feats, demo_dir, cfg, console, report))
    step("6. report")
    summarize(lake, report)
    report.facts["elapsed_s"] = round(time.perf_counter() - t0, 1)
    (demo_dir / "report.md").write_text(render(report, console, lake))
    console.print(f"report written to {demo_dir / 'report.md'}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mps.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2 symbols x 6 minutes (tests)")
    ap.add_argument("--state-dir", type=Path, help="where demo/ goes (default: the local profile's state_dir)")
    args = ap.parse_args(argv)
    state_dir = args.state_dir or Path(load_profile("local").state_dir)
    console = Console() if sys.stdout.isatty() else Console(width=140)  # piped (make, CI): keep columns whole
    report = run_demo(TINY if args.tiny else DemoConfig(), state_dir, console)
    ok = report.facts.get("signals_stored") == report.facts.get("updates_published") and report.facts["accounts_balanced"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
