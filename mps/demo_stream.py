"""The demo's streaming step: a held-out session replayed through the streaming featurizer, scored by
the Rust scorer serving the promoted champion, and landed by the signal sink in gold.signals.

NATS runs for the whole demo (promotion writes the champion pointer to its KV bucket); this module
starts the scorer and the sink against it, replays the session's bronze ticks, waits until every
published FeatureUpdate has its signal in gold, and stops what it started.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

from core.strategy import load_strategy
from lakehouse.storage import Lake
from mps import demo_report as dr


def replay_sizing(demo_dir: Path, model_name: str) -> Path:
    """The model's sizing contract with the staleness guard off: replayed history is old by design."""
    cfg = json.loads(load_strategy().sizing_path(model_name).read_text())
    cfg["max_staleness_ms"] = 0
    path = demo_dir / "sizing_replay.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


async def stream_session(
    nats_url: str,
    lake: Lake,
    model_name: str,
    session: tuple[datetime, datetime],
    symbols: list[str],
    demo_dir: Path,
    timeout_s: float,
    console: Console,
) -> dict:
    """Replay ``session`` through featurizer -> scorer -> sink; return the counts and scorer metrics."""
    import nats

    from feature_store.messages import ensure_streams
    from feature_store.signal_sink import run_sink
    from feature_store.streaming.session import publish_lake_session
    from mps.scorer_process import ScorerProcess

    scorer, nc, sink, stop = None, None, None, asyncio.Event()
    try:
        nc = await nats.connect(nats_url)
        await ensure_streams(nc.jetstream())
        scorer = ScorerProcess(
            nats_url,
            model_name=model_name,
            sizing=replay_sizing(demo_dir, model_name),
            log_path=demo_dir / "scorer.log",
        ).start()
        console.print(f"  scorer {scorer.url} serving the champion of {model_name}")
        sink = asyncio.create_task(run_sink(nats_url, lake, stop))
        t0 = time.perf_counter()
        counts = await publish_lake_session(nc, lake, session[0], session[1], symbols)
        published = int(counts["published"])
        console.print(
            f"  replayed {counts['sent']:,} ticks of {counts['source']}: {published:,} FeatureUpdates"
            f" in {time.perf_counter() - t0:.1f}s"
        )
        stored = await dr.wait_for_rows(lake, published, timeout_s)
        console.print(f"  gold.signals holds {stored:,} rows after {time.perf_counter() - t0:.1f}s")
        metrics = dr.scrape_metrics(scorer.url)
    finally:  # stop everything, in reverse order, whatever failed
        stop.set()
        try:
            sink_stats = await asyncio.wait_for(sink, 30) if sink is not None else None
        finally:
            exit_code = scorer.stop() if scorer is not None else None
            if nc is not None:
                await nc.close()
    return {
        "updates_published": published,
        "ticks_replayed": int(counts["sent"]),
        "signals_stored": stored,
        "scorer_exit": exit_code,
        "sink_received": sink_stats.received if sink_stats else 0,
        **metrics,
    }
