"""A promoted model is swapped into a running Rust scorer through the KV pointer; rollback swaps it back.

The registry holds the contract fixtures tick_tiny v1 and v2 (exported by contracts/regen_golden.py);
promotion materialises them from MLflow's artifacts and writes the pointer the scorer watches.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import nats
import pytest

from feature_store.messages import FeaturePublisher, FeatureUpdate, ensure_streams
from mps.scorer_process import ScorerProcess, scorer_binary
from training.gates import PASS, Decision, GateResult
from training.promotion import apply_decision, nats_publisher, rollback
from training.tracking import CHAMPION

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[2] / "contracts" / "models" / "tick_tiny"
VALUES = (0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7)
PASSED = Decision((GateResult("fixture", PASS, None, None, "contract fixture"),), 0.0)


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=5) as resp:
        return json.loads(resp.read())


def wait_for_version(scorer, nats_url: str, version: str, timeout: float = 120.0) -> None:
    """Feed updates (the scorer swaps between micro-batches) until /health reports ``version``."""

    async def go():
        nc = await nats.connect(nats_url)
        pub = FeaturePublisher(nc)
        deadline, seq = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            ts = time.time_ns()
            await pub.publish(FeatureUpdate("SIM1:SIM", "1s", ts, ts + 1_000_000, "tick_v1", VALUES, seq))
            seq += 1
            await nc.flush()
            if health(scorer.url)["model_version"] == version:
                await nc.close()
                return
            await asyncio.sleep(0.05)
        await nc.close()
        raise AssertionError(f"scorer still serves {health(scorer.url)['model_version']}, expected {version}")

    asyncio.run(go())


def test_promotion_and_rollback_swap_the_running_scorer(tracker, nats_server, tmp_path):
    scorer_binary()
    publish = nats_publisher(nats_server.url)
    for v in ("1", "2"):
        run_id = tracker.log_run(
            "tick", f"fixture-v{v}", params={}, metrics={}, artifacts={"model": FIXTURES / f"v{v}"}
        )
        assert tracker.register(run_id, "tick_tiny") == v

    async def streams():
        nc = await nats.connect(nats_server.url)
        await ensure_streams(nc.jetstream())
        await nc.close()

    asyncio.run(streams())
    apply_decision(tracker, "tick_tiny", "1", PASSED, models_dir=tmp_path / "models", publish=publish, promoted_at_ns=1)
    with ScorerProcess(nats_server.url, mode="core", log_path=tmp_path / "scorer.log") as scorer:
        wait_for_version(scorer, nats_server.url, "1")
        apply_decision(
            tracker, "tick_tiny", "2", PASSED, models_dir=tmp_path / "models", publish=publish, promoted_at_ns=2
        )
        wait_for_version(scorer, nats_server.url, "2")
        rollback(tracker, "tick_tiny", models_dir=tmp_path / "models", publish=publish, promoted_at_ns=3)
        wait_for_version(scorer, nats_server.url, "1")
    assert tracker.alias("tick_tiny", CHAMPION) == "1"
