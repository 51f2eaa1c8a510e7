"""``make demo``: the whole pipeline on the embedded default, step by step, then a report.

    .venv/bin/python -m mps.demo [--tiny] [--keep-ui]

1. a fresh demo directory ``<state_dir>/demo`` (lake, Prefect home, NATS store; other state is left alone);
2. a real local Prefect server (``prefect server start``, SQLite under ``demo/prefect``, UI on);
3. the ``ingest`` flow: the multi-vendor simulator into bronze (every row accounted for);
4. the ``reconcile`` flow: silver 1s and 1m consensus bars behind the quality gate, adjusted bars,
   vendor stats and silver.freshness; the gate's results rendered as HTML; the consensus scored
   against the simulator's ground truth;
5. the tick feature set ``tick_v1`` from silver 1s bars into gold.tick_features;
6. streaming: NATS from the wheel, the fixture tick model as champion, the Rust scorer and the
   signal sink into gold.signals; the features replayed as FeatureUpdates until every signal is stored;
7. the report, printed and written to ``<state_dir>/demo/report.md`` (figures in ``facts.json``).

Every figure of the report is read back from what the steps persisted (``mps.demo_report``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
from rich.console import Console

from core.profile import load_profile
from core.resources import contracts_dir
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_QUOTES, BRONZE_TRADES, SILVER_BARS
from mps import demo_report as dr
from mps.prefect_server import PrefectServer

UTC = UTC
MODEL = contracts_dir() / "models" / "tick_tiny" / "v2" / "tick_tiny.onnx"
SIZING = contracts_dir() / "sizing.json"


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo market is and how patiently the demo waits for its services."""

    symbols: tuple[str, ...] = ("SIM1:SIM", "SIM2:SIM", "SIM3:SIM")
    start: date = date(2026, 1, 5)
    session_minutes: int = 60
    trades_per_day: int = 50_000
    seed: int = 7
    timeframes: tuple[str, ...] = ("1s", "1m")
    signal_timeout_s: float = 120.0
    prefect_startup_s: float = 180.0
    stale_after_s: float = 10.0  # open-market seconds without a new trade price before a tick feed is stale

    def sim_params(self) -> dict:
        return {
            "symbols": list(self.symbols),
            "start": self.start.isoformat(),
            "session_minutes": self.session_minutes,
            "trades_per_day": self.trades_per_day,
            "seed": self.seed,
        }

    @property
    def session(self) -> tuple[datetime, datetime]:
        """(open, close) of the simulated session, UTC."""
        from lakehouse.sources.sim_session import sessions

        s = sessions("XNYS", self.start, 1, self.session_minutes)[0]
        return tuple(datetime.fromtimestamp(ns // 1000 / 1e6, UTC) for ns in (s.open_ns, s.close_ns))

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The reconciled window: the session's day up to one minute after its close (late prints land there)."""
        return datetime.combine(self.start, datetime.min.time(), UTC), self.session[1] + timedelta(minutes=1)


TINY = DemoConfig(symbols=("SIM1:SIM", "SIM2:SIM"), session_minutes=6, trades_per_day=30_000, signal_timeout_s=60.0)


def fresh_demo_dir(state_dir: Path) -> tuple[Lake, Path]:
    """Wipe and recreate ``<state_dir>/demo`` and return its lake."""
    demo_dir = state_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    (demo_dir / "lake").mkdir(parents=True)
    return Lake(str(demo_dir / "lake")), demo_dir


def ingested(lake: Lake, result: dict, report: dr.DemoReport, console: Console) -> None:
    """Report the ingest flow's totals and the per-table account it left in bronze.ingest_log."""
    report.add(
        "Ingest account (rows_read = rows_written + duplicates + quarantined)", dr.ingest_account(lake, "simulator")
    )
    report.facts.update(
        accounts_balanced=result["balanced"],
        ingest_failures=len(result["failures"]),
        rows_read=result["rows_read"],
        rows_written=result["rows_written"],
    )
    console.print(
        f"  read {result['rows_read']:,} rows, wrote {result['rows_written']:,}, quarantined "
        f"{result['quarantined']:,}; balanced: {result['balanced']}"
    )


def reconciled(
    lake: Lake, cfg: DemoConfig, written: dict, demo_dir: Path, report: dr.DemoReport, console: Console
) -> None:
    """Report silver, the quality gate and freshness from the tables, and score the consensus against truth."""
    from lakehouse.quality.docs import build_docs
    from lakehouse.security_master import load_instruments

    (start, end), (open_, close) = cfg.window, cfg.session
    tfs, calendars = list(cfg.timeframes), {i.symbol_id: i.calendar for i in load_instruments()}
    bars = dr.silver_bars(lake, tfs)
    report.add("Reconcile flow: rows written", pl.DataFrame({"table": list(written), "rows": list(written.values())}))
    report.add("Silver bars per timeframe", dr.bars_summary(bars))
    expectations, quarantined = dr.quality_summary(lake)
    report.add("Quality gate on silver.bars (great-expectations)", expectations)
    docs = build_docs(lake, demo_dir / "quality-docs")
    errors, outliers = dr.accuracy(lake, bars, dr.vendor_ticks(lake, start, end, list(cfg.symbols)), calendars, tfs)
    report.add("Close vs true price (bps): consensus and each vendor alone", errors)
    report.add("Outlier flags (vendor left out of the consensus) vs injected bad prints", outliers)
    trades = lake.read(BRONZE_TRADES, ["symbol_id", "source", "ts", "price"])
    per_vendor, fresh = dr.freshness_summary(lake, trades, open_, close, cfg.stale_after_s)
    report.add(
        f"Freshness per vendor (silver.freshness at {end:%H:%M}; open time stale = no new price"
        f" for {cfg.stale_after_s:g} s)",
        per_vendor,
    )
    cons = errors.filter(pl.col("series") == "consensus")
    report.facts.update(
        gate_rows_in=bars.height + quarantined["row"].n_unique(),
        gate_passed=bars.height,
        gate_quarantined=quarantined["row"].n_unique(),
        gate_expectations=expectations.height,
        gate_failed_expectations=int((~expectations["success"]).sum()),
        quality_docs=docs.resolve().as_uri(),
        consensus_rmse_bps=dict(zip(cons["tf"], cons["rmse_bps"])),
        outlier_precision=dict(zip(outliers["tf"], outliers["precision"])),
        outlier_recall=dict(zip(outliers["tf"], outliers["recall"])),
        **fresh,
    )
    console.print(dr.reconcile_line(report.facts))


def featurize(lake: Lake, report: dr.DemoReport) -> pl.DataFrame:
    """Compute tick_v1 from silver 1s bars and bronze quotes; write gold.tick_features."""
    from feature_store.tick_features import FEATURE_NAMES, GOLD_TICK_FEATURES, features_from_silver, write_features

    bars = lake.read(SILVER_BARS, filter=(pc.field("tf") == "1s") & (pc.field("adjustment") == "raw"))
    quotes = lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "bid_size", "ask", "ask_size"])
    feats = features_from_silver(bars, quotes)
    write_features(lake, feats)
    report.add(
        f"Tick features {GOLD_TICK_FEATURES.qualified}: {feats.height:,} rows (model input order)",
        dr.features_summary(feats, FEATURE_NAMES),
    )
    report.facts["feature_rows"] = feats.height
    return feats


def replay_sizing(demo_dir: Path) -> Path:
    """The contract's sizing config with the staleness guard off: replayed history is old by design."""
    cfg = json.loads(SIZING.read_text())
    cfg["max_staleness_ms"] = 0
    path = demo_dir / "sizing_replay.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


async def stream(
    lake: Lake, feats: pl.DataFrame, demo_dir: Path, cfg: DemoConfig, console: Console, report: dr.DemoReport
) -> None:
    """Replay the features through NATS and the Rust scorer; land every signal in gold.signals."""
    import nats

    from feature_store.messages import FeaturePublisher, ensure_streams, put_champion
    from feature_store.signal_sink import run_sink
    from feature_store.tick_features import check_model_features, feature_updates
    from mps.nats_server import NatsServer
    from mps.scorer_process import ScorerProcess
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
        scorer = ScorerProcess(
            server.url, model_name=meta.model_name, sizing=replay_sizing(demo_dir), log_path=demo_dir / "scorer.log"
        ).start()
        console.print(f"  NATS {server.url}, scorer {scorer.url} serving {meta.model_name} v{meta.model_version}")
        sink = asyncio.create_task(run_sink(server.url, lake, stop))
        publisher, t0 = FeaturePublisher(nc, jetstream=True), time.perf_counter()
        for update in updates:
            await publisher.publish(update)
        console.print(f"  published {len(updates):,} FeatureUpdates in {time.perf_counter() - t0:.1f}s")
        stored = await dr.wait_for_rows(lake, len(updates), cfg.signal_timeout_s)
        console.print(f"  gold.signals holds {stored:,} rows after {time.perf_counter() - t0:.1f}s")
        metrics = dr.scrape_metrics(scorer.url)
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
    report.facts.update(
        updates_published=len(updates),
        signals_stored=stored,
        scorer_exit=exit_code,
        sink_received=sink_stats.received if sink_stats else 0,
        **metrics,
    )


def run_demo(cfg: DemoConfig, state_dir: Path, console: Console, keep_ui: bool = False) -> dr.DemoReport:
    """Run every step in order; return the report (also written to ``<state_dir>/demo/report.md``)."""
    from flows.ingest import ingest
    from flows.reconcile import reconcile

    report, t0 = dr.DemoReport(), time.perf_counter()
    step = dr.Steps(console, report)
    start, end = cfg.window
    with step("1. fresh demo directory"):
        lake, demo_dir = fresh_demo_dir(state_dir)
        console.print(f"  lake {lake.root}")
    with ExitStack() as services:
        with step("2. start a local Prefect server"):
            prefect = services.enter_context(PrefectServer(demo_dir / "prefect", startup_timeout=cfg.prefect_startup_s))
            services.enter_context(prefect.connected())
            console.print(f"  API {prefect.api_url}; UI {prefect.ui_url}; state {prefect.home}")
        with step("3. ingest flow: the simulator into bronze"):
            ingested(lake, ingest("simulator", cfg.sim_params(), lake_root=lake.root, as_of=end), report, console)
        with step("4. reconcile flow: silver bars, quality gate, freshness; accuracy vs truth"):
            written = reconcile(
                start, end, timeframes=list(cfg.timeframes), symbols=list(cfg.symbols), lake_root=lake.root
            )
            reconciled(lake, cfg, written, demo_dir, report, console)
        with step("5. tick features tick_v1 into gold"):
            feats = featurize(lake, report)
            console.print(f"  {feats.height:,} feature rows for {feats['symbol_id'].n_unique()} symbols")
        with step("6. stream through NATS and the Rust scorer into gold.signals"):
            asyncio.run(stream(lake, feats, demo_dir, cfg, console, report))
        with step("7. report: flow runs from Prefect, signals from gold"):
            report.add("Prefect flow runs", dr.flow_runs(prefect.ui_url))
            dr.signals_summary(
                lake, report, cost_bps=sum(json.loads(SIZING.read_text())[k] for k in ("fee_bps", "slippage_bps"))
            )
        report.facts.update(
            prefect_ui=prefect.ui_url,
            prefect_startup_s=round(prefect.startup_s, 1),
            elapsed_s=round(time.perf_counter() - t0, 1),
        )
        dr.write(report, demo_dir, console, dr.hints(lake.root, report.facts["quality_docs"], prefect.home))
        if keep_ui:
            console.print(f"Prefect UI at {prefect.ui_url}; press Ctrl-C to stop it")
            prefect.wait()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mps.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2 symbols x 6 minutes (tests)")
    ap.add_argument("--state-dir", type=Path, help="where demo/ goes (default: the local profile's state_dir)")
    ap.add_argument("--keep-ui", action="store_true", help="keep the Prefect server and UI up until Ctrl-C")
    args = ap.parse_args(argv)
    state_dir = args.state_dir or Path(load_profile("local").state_dir)
    console = Console() if sys.stdout.isatty() else Console(width=140)  # piped (make, CI): keep columns whole
    report = run_demo(TINY if args.tiny else DemoConfig(), state_dir, console, keep_ui=args.keep_ui)
    f = report.facts
    ok = f.get("signals_stored") == f.get("updates_published") and f["accounts_balanced"] and not f["ingest_failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
