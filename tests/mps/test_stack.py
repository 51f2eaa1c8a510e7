"""``mps up`` / ``status`` / ``down``: every service healthy, reachable, and nothing left running after down."""

from __future__ import annotations

import httpx
import psutil
import pytest

from core.profile import load_profile
from mps.stack import down, healthy, read_state, up


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_up_status_down_leaves_no_orphans(tmp_path):
    from mps.scorer_process import scorer_binary

    prof = load_profile("local", base=tmp_path)
    only = {"nats", "prefect", "serve", "mlflow", "featurizer", "sink", "api"}
    if scorer_binary(build=False).is_file():
        only.add("scorer")
    services = up(prof, "local", only=only, free_ports=True, timeout=600, echo=lambda *_: None)
    try:
        assert {s.role for s in services} == only and all(healthy(s) for s in read_state(prof))
        assert [s.name for s in services if s.role == "sink"] == ["sink", "sink2"]  # two replicas, one durable
        api = next(s for s in services if s.name == "api")
        assert httpx.get(api.url.replace("/docs", "/health"), timeout=10).json()["status"] == "ok"
        procs = [p for s in services for p in _tree(s.pid)]
        assert len(procs) >= len(services)
    finally:
        stopped = down(prof, echo=lambda *_: None)
    assert stopped == len(services) and read_state(prof) == []
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [(p.pid, p.cmdline()[:3]) for p in alive]
