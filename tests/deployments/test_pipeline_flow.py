"""The pipeline flow runs its steps in order on the lake's windows: a first run ingests, reconciles and
featurizes the next session; a second run on the same date finds nothing new at any step; training waits (and says why) until gold
holds enough days to fit, calibrate and judge a model."""

from __future__ import annotations

import polars as pl

from feature_store.gold import GOLD_FEATURES
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_TRADES, SILVER_BARS

SYMBOLS = ["SIM1:SIM", "SIM2:SIM"]
TINY = {"session_minutes": 3, "trades_per_day": 20_000}


def test_pipeline_steps_follow_the_lake(prefect_harness, tmp_path):
    from flows.pipeline import pipeline

    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: test\n"
        f"lake: {{root: '{tmp_path / 'lake'}'}}\n"
        f"prefect: {{home: '{tmp_path / 'prefect'}'}}\n"
        f"mlflow: {{tracking_uri: 'sqlite:///{tmp_path / 'mlflow.db'}', artifact_root: '{tmp_path / 'mlruns'}'}}\n"
        f"nats: {{url: 'nats://127.0.0.1:1', embedded: true, store_dir: '{tmp_path / 'nats'}'}}\n"
        f"state_dir: '{tmp_path}'\n"
    )
    first = pipeline(profile=str(profile), symbols=SYMBOLS, source_params=TINY, train=False)
    lake = Lake(str(tmp_path / "lake"))
    days = lake.read(BRONZE_TRADES, ["ts"])["ts"].dt.date().unique()
    assert days.len() == 1 and first["ingest"]["rows_written"] > 0  # one session: the last one up to today
    assert first["reconcile"]["silver.bars"] > 0
    assert set(lake.read(SILVER_BARS, ["tf"])["tf"].unique()) == {"1s", "1m"}  # the tick model's timeframes
    assert first["featurize"]["gold.features/tick_v2"] > 0
    tick = lake.read(GOLD_FEATURES, ["feature_set", "ts"]).filter(pl.col("feature_set") == "tick_v2")
    assert tick["ts"].dt.date().unique().to_list() == days.to_list()

    again = pipeline(profile=str(profile), symbols=SYMBOLS, source_params=TINY, train=False)
    assert again["ingest"]["up_to_date"] and again["reconcile"] == {} and again["featurize"] == {}

    young = pipeline(profile=str(profile), symbols=SYMBOLS, source_params=TINY, train=True)
    assert young["train"]["waiting"].startswith("gold holds 1 day(s) of tick_v2; training needs 4")
    assert "promote" not in young and "backtest" not in young
