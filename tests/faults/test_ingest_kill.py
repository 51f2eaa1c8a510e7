"""``kill -9`` of an ingest mid-run, then a re-run: the lake holds exactly what a clean run holds.

Issue 8: the crashed run's committed rows had no ingest_log entry and the re-run counted them as
duplicates. Now each chunk's account rides in its commit, and the re-run logs them as its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from ingest_helpers import CLOCK_AT, batches, fingerprint

from lakehouse.ingest import Ingestor
from lakehouse.ingest_audit import committed_chunks, unlogged
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_TRADES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

_CHILD = """
import sys, time
from ingest_helpers import CLOCK_AT, batches
from lakehouse.ingest import Ingestor
from lakehouse.storage import Lake

def slow(chunks):
    for c in chunks:
        time.sleep(0.3)
        yield c

deliveries = batches(files=3, chunks=4)
for b in deliveries:
    b.chunks = slow(b.chunks)
Ingestor(Lake(sys.argv[1]), lambda: CLOCK_AT).run(deliveries)
"""


def _commits(lake: Lake) -> int:
    log = Path(lake.uri(BRONZE_TRADES)) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def test_kill_9_mid_ingest_then_rerun_equals_a_clean_run(tmp_path):
    clean = Lake(str(tmp_path / "clean"))
    Ingestor(clean, lambda: CLOCK_AT).run(batches(files=3, chunks=4))

    lake = Lake(str(tmp_path / "lake"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, lake.root], env=env)
    deadline = time.monotonic() + 120
    while _commits(lake) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the ingest finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    stored = lake.read(BRONZE_TRADES).height
    assert 0 < stored < clean.read(BRONZE_TRADES).height  # killed part way
    # The commits say what is stored and by which batch, though the run logged nothing for them.
    chunks = committed_chunks(lake, BRONZE_TRADES)
    assert chunks.get_column("rows_written").sum() == stored
    assert unlogged(lake, BRONZE_TRADES).get_column("rows_written").sum() == stored - _logged_written(lake)

    report = Ingestor(lake, lambda: CLOCK_AT).run(batches(files=3, chunks=4))
    assert report.balanced and not report.failures
    assert fingerprint(lake) == fingerprint(clean)  # counts and checksums of trades, quarantine, log
    assert unlogged(lake, BRONZE_TRADES).height == 0
    log = lake.read(BRONZE_INGEST_LOG)
    assert log.get_column("rows_written").sum() == lake.read(BRONZE_TRADES).height
    balanced = log.select(
        (pl.col("rows_read") == pl.col("rows_written") + pl.col("duplicates") + pl.col("quarantined")).all()
    )
    assert balanced.item()


def _logged_written(lake: Lake) -> int:
    if not lake.exists(BRONZE_INGEST_LOG):
        return 0
    return lake.read(BRONZE_INGEST_LOG).get_column("rows_written").sum()
