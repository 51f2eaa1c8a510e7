"""``make demo`` end to end on the tiny configuration: a local Prefect server and NATS, the ingest,
reconcile, featurize-ticks, train and promote flows, then (when the gates pass) the held-out session
through the streaming featurizer and the Rust scorer into gold.signals and a backtest."""

from __future__ import annotations

import io
import shutil

import polars as pl
import pytest
from rich.console import Console

from feature_store.gold import read_features, read_labels
from lakehouse.sql import query
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS, SILVER_BARS, SILVER_QUALITY_RESULTS
from mps.demo import TINY, run_demo
from mps.prefect_server import PrefectServer
from mps.scorer_process import scorer_binary


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
    lake = Lake(str(tmp_path / "demo" / "lake"))
    # bronze: every simulated row accounted for
    assert facts["accounts_balanced"] and facts["ingest_failures"] == 0
    assert facts["rows_read"] == facts["rows_written"] > 0
    # silver: every bar the gate saw is stored or quarantined with a reason (a true simulated jump can
    # exceed the jump rule and go to review: one 1s bar of 28,737 did when the informed flow rose to 0.15);
    # the consensus is scored against injected bad prints (there are some)
    bars = lake.read(SILVER_BARS)
    assert set(bars["tf"].unique()) == set(TINY.timeframes)
    assert facts["gate_passed"] == bars.height
    assert facts["gate_rows_in"] == bars.height + facts["gate_quarantined"]
    assert facts["gate_quarantined"] <= 1e-3 * facts["gate_rows_in"]
    assert lake.read(SILVER_QUALITY_RESULTS).height == facts["gate_expectations"] > 0
    assert facts["outlier_bad_bars"]["1s"] > 0, "the simulator injected no bad prints: precision/recall are vacuous"
    assert facts["outlier_recall"]["1s"] >= 0.9 and facts["outlier_precision"]["1s"] >= 0.9
    assert facts["consensus_rmse_bps"]["1s"] < 5
    # gold: features and labels of the training sessions only (the last session is held out)
    feats = read_features(lake, "tick_v2")
    assert feats.height == facts["feature_rows"] > 0 and read_labels(lake, "ret_tick_v1").height > 0
    assert feats["ts"].max() < TINY.session[0]
    # training: the model and its baselines were scored on the same held-out day
    scores = facts["log_score"]
    assert {"model", "climatology", "ewma_t"} <= set(scores) and all(v > 0 for v in scores.values())
    runs = {title: frame for title, frame in report.sections}["Prefect flow runs"]
    flows = dict(runs.select("flow", "state").iter_rows())
    assert {k: flows.get(k) for k in ("ingest", "reconcile", "featurize-ticks", "train", "promote")} == dict.fromkeys(
        ("ingest", "reconcile", "featurize-ticks", "train", "promote"), "Completed"
    )
    assert not PrefectServer(tmp_path, port=int(facts["prefect_ui"].rsplit(":", 1)[1])).healthy()
    if not facts["promoted"]:
        # a refused challenger: reasons given, nothing streamed, nothing traded
        assert facts["promotion_reasons"] and "signals_stored" not in facts
        assert not lake.exists(GOLD_SIGNALS) or lake.read(GOLD_SIGNALS).height == 0
        return
    # streaming: every FeatureUpdate of the held-out session came back as exactly one stored signal
    assert facts["signals_stored"] == facts["updates_published"] > 0
    assert facts["scorer_deadletters"] == 0 and facts["scorer_exit"] == 0
    signals = lake.read(GOLD_SIGNALS)
    assert signals.height == facts["gold_signals_rows"] == facts["updates_published"]
    assert signals["ts"].min() >= TINY.session[0] and signals["symbol_id"].n_unique() == len(TINY.symbols)
    assert signals["prob_up"].is_between(0, 1).all() and (signals["q05"] <= signals["q95"]).all()
    by_sql = query(lake, "SELECT count(*) AS n FROM gold.signals")
    assert by_sql["n"][0] == signals.height
    assert (tmp_path / "demo" / "backtest").is_dir() and facts["backtest_report"].endswith(".html")
    assert pl.Series(signals["size"]).is_finite().all()
    assert (signals["size"] != 0).sum() > 0, "a promoted champion streamed signals that never size a position"
