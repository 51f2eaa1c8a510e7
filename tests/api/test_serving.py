"""The served API settles its heap at start-up: lazily imported route modules loaded, the start-up
objects frozen out of the garbage collector's full collections (the p99 of the server) and young
collections spaced out; /metrics shows the collections."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, sys
from fastapi.testclient import TestClient
from lakehouse.storage import Lake
from mps.api.app import create_app
from mps.api.services import Services
from mps.api.settings import ApiSettings

serving = sys.argv[1] == "serving"
app = create_app(Services(ApiSettings(keys={"k": "k" * 40}), Lake(sys.argv[2])), serving=serving)
before = (gc.get_freeze_count(), "nats" in sys.modules, "backtest.reference_scorer" in sys.modules)
with TestClient(app) as c:
    assert c.get("/health").status_code == 200
    after = (gc.get_freeze_count(), "nats" in sys.modules, "backtest.reference_scorer" in sys.modules)
    print(*before, *after, gc.get_threshold()[0])
"""


def _probe(mode: str, lake: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(lake)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_serving_app_freezes_its_start_up_heap(tmp_path):
    from mps.api.app import GC_THRESHOLDS

    frozen0, nats0, scorer0, frozen, nats, scorer, gen0 = _probe("serving", tmp_path)
    assert (frozen0, nats0, scorer0) == ("0", "False", "False")
    assert int(frozen) > 50_000 and nats == scorer == "True"  # FastAPI + pydantic + polars alone exceed 50k
    assert int(gen0) == GC_THRESHOLDS[0] != 700  # young collections spaced out (CPython's default: 700)


def test_an_app_built_for_tests_leaves_the_heap_alone(client):
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    assert client.get("/health").status_code == 200  # the fixture's TestClient ran the lifespan
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, thresholds)


def test_metrics_expose_the_garbage_collector_and_the_process(client):
    text = client.get("/metrics").text
    assert 'python_gc_collections_total{generation="2"}' in text and "process_cpu_seconds_total" in text
