"""``mps replay`` then ``mps featurizer`` from the CLI against a lake of real BAC bronze ticks and NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import nats
import polars as pl
import pytest
from typer.testing import CliRunner

from feature_store.streaming import market_data as md
from feature_store.streaming.replay import replay
from feature_store.tick.batch import tick_features
from feature_store.tick.events import ordered_events
from lakehouse.tables import BRONZE_QUOTES, BRONZE_TRADES
from mps.cli import app
from mps.featurizer_process import featurizer_binary

pytestmark = pytest.mark.slow
END = datetime(2013, 10, 7, 13, 40, tzinfo=UTC)


def _bronze(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("ts") < END).with_columns(
        pl.lit("lean").alias("source"),
        pl.lit(datetime(2026, 11, 1, tzinfo=UTC)).cast(pl.Datetime("ns", "UTC")).alias("ingest_ts"),
        pl.lit("b1").alias("batch_id"),
        pl.col("ts").dt.strftime("%Y-%m-%d").alias("date"),
    )


def test_replay_and_featurizer_commands(lake, bac_ticks, nats_server):
    trades, quotes = bac_ticks
    lake.append(BRONZE_TRADES, _bronze(trades))
    lake.append(BRONZE_QUOTES, _bronze(quotes))
    runner = CliRunner()
    common = ["--nats-url", nats_server.url]
    window = ["--source", "lean", "--start", "2013-10-07T13:25:00", "--end", END.isoformat()]
    done = runner.invoke(app, ["replay", *window, "--symbol", "BAC:US", "--lake", lake.root, *common])
    assert done.exit_code == 0, done.output
    sent = int(done.output.split()[1].replace(",", ""))
    assert sent == _bronze(trades).height + _bronze(quotes).height
    done = runner.invoke(app, ["featurizer", "--engine", "python", "--idle-exit", "1", *common])
    assert done.exit_code == 0, done.output
    counts = json.loads(done.output)
    rows = tick_features(_bronze(trades), _bronze(quotes)).height
    assert counts["events"] == sent and counts["published"] == rows and counts["bad"] == 0

    async def stored() -> int:
        nc = await nats.connect(nats_server.url)
        n = (await nc.jetstream().stream_info(md.FEATURES_STREAM)).state.messages
        await nc.close()
        return n

    assert asyncio.run(stored()) == rows


def test_featurizer_command_runs_the_rust_engine(bac_ticks, nats_server):
    trades, quotes = (_bronze(f) for f in bac_ticks)
    events = ordered_events(trades, quotes)

    async def publish() -> int:
        nc = await nats.connect(nats_server.url)
        sent = await replay(nc, events)
        await nc.close()
        return sent

    sent = asyncio.run(publish())
    featurizer_binary(build=True)
    root = Path(__file__).resolve().parents[3]
    cmd = "from mps.cli import app; app()"
    args = ["featurizer", "--engine", "rust", "--idle-exit", "1", "--nats-url", nats_server.url]
    done = subprocess.run([sys.executable, "-c", cmd, *args], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("counts "))
    counts = json.loads(line.removeprefix("counts "))
    assert counts["service"]["events"] == sent and counts["service"]["bad"] == 0 and counts["ended"] == "idle"
    assert counts["service"]["published"] == tick_features(trades, quotes).height
