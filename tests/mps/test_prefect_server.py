"""The local Prefect server launcher: a real ``prefect server start`` on a free port, flows recorded, then stopped."""

from __future__ import annotations

import os
import socket
import urllib.request

import pytest
from prefect import flow

from core.errors import ServiceError
from mps.prefect_server import PrefectServer
from mps.processes import free_port


@flow(name="mps-server-probe")
def probe(x: int) -> int:
    return x + 1


@pytest.mark.slow
def test_server_records_a_flow_run_and_stops(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    port = free_port()
    server = PrefectServer(tmp_path / "prefect", port)
    with server, server.connected():
        assert server.api_url == f"http://127.0.0.1:{port}/api" and server.startup_s > 0
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"true"
        assert probe(41) == 42
        with get_client(sync_client=True) as client:
            assert client.api_url.host == "127.0.0.1" and client.api_url.port == port
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["mps-server-probe"])))
        assert [r.state_name for r in runs] == ["Completed"]
        pid = server.pid
    assert (tmp_path / "prefect" / "prefect.db").is_file()  # the server kept its state under its own home
    assert not server.healthy()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.slow
def test_server_that_cannot_bind_fails_with_its_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = PrefectServer(tmp_path / "prefect", taken.getsockname()[1], startup_timeout=120)
        with pytest.raises(ServiceError, match="prefect server exited with code .* log .*server.log"):
            server.start()
    assert server.pid is None
