"""``make demo``: the whole pipeline on the embedded default, step by step, then a report.

    .venv/bin/python -m mps.demo [--tiny] [--keep-ui]

1. a fresh demo directory ``<state_dir>/demo`` with its own profile (lake, MLflow, NATS, state);
2. a real local Prefect server (``prefect server start``, SQLite under ``demo/prefect``, UI on) and
   NATS with JetStream from the wheel;
3. the ``ingest`` flow: nine simulated sessions of the multi-vendor simulator into bronze;
4. the ``reconcile`` flow: silver 1s and 1m consensus bars behind the quality gate, vendor stats,
   freshness; the gate's results rendered as HTML; the consensus scored against the simulator's truth;
5. the ``featurize-ticks`` flow: tick_v2 features and ret_tick_v1 labels into gold for every session
   but the last (held out);
6. the ``train`` flow: the strategy's tick model, walk-forward by day beside its baselines, calibrated,
   exported to ONNX and registered in MLflow as the challenger;
7. the ``promote`` flow: the gates judge the challenger; a pass moves the MLflow alias and the NATS
   champion pointer;
8. streaming: the held-out session replayed through the streaming featurizer, scored by the Rust
   scorer serving the champion, every signal landed in gold.signals by the sink;
9. the ``backtest`` flow on those signals (HTML report);
10. the report, printed and written to ``<state_dir>/demo/report.md`` (figures in ``facts.json``).

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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import polars as pl
from rich.console import Console
from rich.markup import escape

from core.profile import load_profile
from core.strategy import load_strategy
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_TRADES
from mps import demo_report as dr
from mps.prefect_server import PrefectServer

UTC = UTC


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo market is and how patiently the demo waits for its services."""

    symbols: tuple[str, ...] = ("SIM1:SIM", "SIM2:SIM", "SIM3:SIM")
    start: date = date(2026, 1, 5)
    # the last session is held out of training and replayed through the scorer; of the rest the last
    # test_days are the gates' evidence and the cal_days before them calibrate: temperatures and P(up)
    # slopes are fitted only on >= 2 days (training.candidate), and the pool with EWMA-t fitted on one
    # day learned that day (at 60 s it gave the network ~0 weight and the candidate sized nothing, where
    # the network alone beat EWMA-t on the test days); 9 sessions leave 4 to train on
    n_days: int = 9
    test_days: int = 2  # the log-score gate needs a day-block bootstrap CI, which one day cannot give
    cal_days: int = 2
    session_minutes: int = 45  # labels need 600 s ahead: only the first 35 minutes of a session make windows
    trades_per_day: int = 56_000
    seed: int = 7
    model_name: str = "specs-tick"
    fast_training: bool = False
    timeframes: tuple[str, ...] = ("1s", "1m")
    signal_timeout_s: float = 120.0
    prefect_startup_s: float = 180.0
    stale_after_s: float = 10.0  # open-market seconds without a new trade price before a tick feed is stale
    # Informed order flow (lakehouse.sources.sim_config.Dynamics): the simulator's only other directional
    # signal, sign persistence, decays within a few trades, leaving nothing to predict at the 60 s sizing
    # horizon. The strength is set from first principles, not from test-day results: one trade of sign +1
    # moves the mid by sigma_1s * sqrt(impact_share (1 - p) / (1 + p) / lam) * E[sqrt(size/mean)], so a
    # bias b drifts it by r b per second with r = sigma_1s * 0.274 * 0.923 * sqrt(lam) (p = 0.6,
    # impact_share = 0.3). Over the first 45 minutes of a session the U-shape scales sigma_1s^2 and lam by
    # ~1.82, so with annual_vol 0.25 (sigma_1s = 1.03 bps at 1.0) and 56,000 trades a day (lam = 2.39/s at
    # 1.0), r ~ 0.73 bps/s. A half-life of 120 s (tau = 173 s) carries b over the next 60 s as
    # tau (1 - e^(-60/tau)) = 51 s of full drift: ~37 bps per unit of b. A one-stdev bias of 0.15 thus
    # drifts the mid ~5.6 bps over 60 s (TINY's 40,000 trades: ~4.7 bps): about twice the 3 bps round
    # trip the backtest charges (two fills of 0.5 bps fee and 1 bp half spread; contracts/sizing_tick_v2.json
    # sizes net of it), yet small beside the 60 s diffusive stdev (~11 bps). At 0.08 (1.5 round trips at
    # one stdev) the simulator's own oracle, held over 10 sessions, made Sharpe 5.6 with a CI through 0;
    # at 0.15 it makes 12.7 [4.7, 26.6]: a market with an edge beyond costs that a model can earn, which
    # real data (README) does not promise. The 120 s half-life sits inside the 10-120 s flow windows of
    # tick_v2, so imbalance over them estimates b. Cost: the drift adds variance (~25 % at 60 s, more at
    # horizons >> 173 s), so the demo market's long-run vol is above annual_vol.
    informed_bias: float = 0.15
    informed_half_life_s: float = 120.0

    def sim_params(self) -> dict:
        return {
            "symbols": list(self.symbols),
            "start": self.start.isoformat(),
            "n_days": self.n_days,
            "session_minutes": self.session_minutes,
            "trades_per_day": self.trades_per_day,
            "seed": self.seed,
            "dynamics": {"informed_bias": self.informed_bias, "informed_half_life_s": self.informed_half_life_s},
        }

    @property
    def sessions(self) -> list[tuple[datetime, datetime]]:
        """(open, close) of every simulated session, UTC."""
        from lakehouse.sources.sim_session import sessions

        return [
            (
                datetime.fromtimestamp(s.open_ns // 1000 / 1e6, UTC),
                datetime.fromtimestamp(s.close_ns // 1000 / 1e6, UTC),
            )
            for s in sessions("XNYS", self.start, self.n_days, self.session_minutes)
        ]

    @property
    def session(self) -> tuple[datetime, datetime]:
        """The held-out (last) session."""
        return self.sessions[-1]

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The reconciled window: the first session's day up to a minute after the last close (late prints)."""
        return datetime.combine(self.start, datetime.min.time(), UTC), self.sessions[-1][1] + timedelta(minutes=1)

    @property
    def train_end(self) -> datetime:
        """Midnight UTC before the held-out session: gold for training stops there."""
        return datetime.combine(self.session[0].date(), datetime.min.time(), UTC)


TINY = DemoConfig(
    symbols=("SIM1:SIM", "SIM2:SIM"),
    n_days=6,
    cal_days=1,
    session_minutes=40,
    trades_per_day=40_000,
    signal_timeout_s=120.0,
)


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
        outlier_bad_bars=dict(zip(outliers["tf"], outliers["bad_bars"])),
        **fresh,
    )
    console.print(dr.reconcile_line(report.facts))


def write_profile(demo_dir: Path, nats_url: str) -> Path:
    """The demo's own profile: its lake, MLflow (SQLite), NATS and state, so every flow runs against them."""
    path = demo_dir / "profile.yaml"
    path.write_text(
        "name: demo\n"
        f"lake: {{root: '{demo_dir / 'lake'}'}}\n"
        f"prefect: {{home: '{demo_dir / 'prefect'}'}}\n"
        f"mlflow: {{tracking_uri: 'sqlite:///{demo_dir / 'mlflow.db'}', artifact_root: '{demo_dir / 'mlflow-artifacts'}'}}\n"
        f"nats: {{url: '{nats_url}', embedded: true, store_dir: '{demo_dir / 'nats'}'}}\n"
        f"state_dir: '{demo_dir}'\n"
    )
    return path


def featurized(written: dict, lake: Lake, report: dr.DemoReport, console: Console) -> None:
    """Report the gold rows the featurize-ticks flow wrote."""
    from feature_store.gold import read_features
    from feature_store.registry import get

    feats = read_features(lake, "tick_v2")
    report.add("Gold tick features tick_v2 (model input order)", dr.features_summary(feats, get("tick_v2").names))
    report.facts.update(feature_rows=written["gold.features/tick_v2"], label_rows=written["gold.labels/ret_tick_v1"])
    console.print(f"  {written['gold.features/tick_v2']:,} feature rows, {written['gold.labels/ret_tick_v1']:,} labels")


def trained(result: dict, report: dr.DemoReport, console: Console) -> None:
    """Report the challenger's out-of-sample scores beside its baselines (DESIGN section 11)."""
    rows = []
    for key, value in sorted(result["metrics"].items()):
        parts = key.split(".")
        if len(parts) == 3 and parts[1] in ("log_score", "ece"):
            rows.append({"model": parts[0], "metric": parts[1], "horizon": parts[2], "value": value})
    table = pl.DataFrame(rows)
    if table.height:
        table = table.pivot(on="model", index=["metric", "horizon"], values="value").sort("metric", "horizon")
    report.add(f"Held-out day: {result['model_name']} v{result['version']} beside its baselines", table)
    overall = {k.split(".")[0]: v for k, v in result["metrics"].items() if k.endswith(".log_score")}
    report.facts.update(model_version=result["version"], log_score=overall)
    console.print("  log score (lower is better): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(overall.items())))


def promoted(decision: dict, report: dr.DemoReport, console: Console) -> None:
    """Report the gate decision: promoted, or the reasons it was refused."""
    report.facts.update(promoted=decision["promoted"], promotion_reasons=decision["reasons"])
    verdict = "promoted to champion" if decision["promoted"] else "refused"
    console.print(f"  v{decision['version']} {verdict}" + "".join(f"\n    - {escape(r)}" for r in decision["reasons"]))
    gates = decision.get("decision", {}).get("gates", [])
    if gates:
        report.add("Promotion gates", pl.DataFrame(gates).select(pl.all().cast(pl.String)))


def run_demo(cfg: DemoConfig, state_dir: Path, console: Console, keep_ui: bool = False) -> dr.DemoReport:
    """Run every step in order; return the report (also written to ``<state_dir>/demo/report.md``)."""
    from flows.backtest import backtest
    from flows.featurize_ticks import featurize_ticks
    from flows.ingest import ingest
    from flows.promote import promote
    from flows.reconcile import reconcile
    from flows.train import train
    from mps.demo_stream import stream_session
    from mps.nats_server import NatsServer

    report, t0 = dr.DemoReport(), time.perf_counter()
    step = dr.Steps(console, report)
    start, end = cfg.window
    symbols = list(cfg.symbols)
    with step("1. fresh demo directory"):
        lake, demo_dir = fresh_demo_dir(state_dir)
        console.print(f"  lake {lake.root}")
    with ExitStack() as services:
        with step("2. start a local Prefect server and NATS (JetStream)"):
            prefect = services.enter_context(PrefectServer(demo_dir / "prefect", startup_timeout=cfg.prefect_startup_s))
            services.enter_context(prefect.connected())
            nats_server = NatsServer(store_dir=demo_dir / "nats")
            nats_server.start()
            services.callback(nats_server.stop)
            profile = str(write_profile(demo_dir, nats_server.url))
            console.print(f"  Prefect API {prefect.api_url}; UI {prefect.ui_url}; NATS {nats_server.url}")
        with step(f"3. ingest flow: {cfg.n_days} simulated sessions into bronze"):
            ingested(lake, ingest("simulator", cfg.sim_params(), lake_root=lake.root, as_of=end), report, console)
        with step("4. reconcile flow: silver bars, quality gate, freshness; accuracy vs truth"):
            written = reconcile(start, end, timeframes=list(cfg.timeframes), symbols=symbols, lake_root=lake.root)
            reconciled(lake, cfg, written, demo_dir, report, console)
        with step("5. featurize-ticks flow: tick_v2 features and labels for the training sessions"):
            featurized(featurize_ticks(start, cfg.train_end, symbols, profile=profile), lake, report, console)
        with step(f"6. train flow: {cfg.model_name} walk-forward by day beside its baselines"):
            result = train(
                model_name=cfg.model_name,
                profile=profile,
                symbols=symbols,
                fast=cfg.fast_training,
                test_days=cfg.test_days,
                cal_days=cfg.cal_days,
            )
            trained(result, report, console)
        with step("7. promote flow: the gates judge the challenger"):
            decision = promote(cfg.model_name, result["version"], profile=profile, nats_url=nats_server.url)
            promoted(decision, report, console)
        if decision["promoted"]:
            with step("8. stream the held-out session: featurizer -> Rust scorer -> gold.signals"):
                report.facts.update(
                    asyncio.run(
                        stream_session(
                            nats_server.url,
                            lake,
                            cfg.model_name,
                            (cfg.session[0], end),
                            symbols,
                            demo_dir,
                            cfg.signal_timeout_s,
                            console,
                        )
                    )
                )
            with step("9. backtest flow on the held-out signals"):
                bt = backtest(
                    created_at=end,
                    symbols=symbols,
                    tf="1s",
                    start=cfg.session[0],
                    end=end,
                    model=cfg.model_name,
                    adjustment="raw",
                    out_dir=str(demo_dir / "backtest"),
                    profile=profile,
                )
                report.facts.update(backtest_report=bt["report"], backtest_run=bt["run_id"])
                console.print(f"  backtest {bt['run_id'][:12]}: report {bt['report']}")
        else:
            console.print("  the challenger was refused: no champion to stream or backtest (see the reasons above)")
        with step("10. report: flow runs from Prefect, signals from gold"):
            report.add("Prefect flow runs", dr.flow_runs(prefect.ui_url))
            if decision["promoted"]:
                sizing = json.loads(load_strategy().sizing_path(cfg.model_name).read_text())
                dr.signals_summary(lake, report, cost_bps=sum(sizing[k] for k in ("fee_bps", "slippage_bps")))
        report.facts.update(
            prefect_ui=prefect.ui_url,
            prefect_startup_s=round(cast(float, prefect.startup_s), 1),  # set once the server came up
            elapsed_s=round(time.perf_counter() - t0, 1),
        )
        dr.write(
            report, demo_dir, console, dr.hints(lake.root, str(report.facts["quality_docs"]), prefect.home, demo_dir)
        )
        if keep_ui:
            console.print(f"Prefect UI at {prefect.ui_url}; press Ctrl-C to stop it")
            prefect.wait()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mps.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2 symbols x 6 sessions of 40 minutes (tests)")
    ap.add_argument("--state-dir", type=Path, help="where demo/ goes (default: the local profile's state_dir)")
    ap.add_argument("--keep-ui", action="store_true", help="keep the Prefect server and UI up until Ctrl-C")
    ap.add_argument("--seed", type=int, help="simulate another market (default: the demo's seed, 7)")
    args = ap.parse_args(argv)
    state_dir = args.state_dir or Path(load_profile("local").state_dir)
    console = Console() if sys.stdout.isatty() else Console(width=140)  # piped (make, CI): keep columns whole
    config = TINY if args.tiny else DemoConfig()
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    report = run_demo(config, state_dir, console, keep_ui=args.keep_ui)
    f = report.facts
    streamed = not f.get("promoted") or f.get("signals_stored") == f.get("updates_published")
    ok = streamed and f["accounts_balanced"] and not f["ingest_failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
