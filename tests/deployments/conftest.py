"""A live local stack for deployment tests: `prefect server start`, a serve process, moto S3.

Session-scoped: the Prefect server takes 20-90 s to start on a busy 2-core machine. The serve
process (``deployments/serve.py``) registers the landing deployment with its trigger and the backtest
deployment against a temporary lake and the moto bucket, and runs the flow runs the server hands it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mps.prefect_server import PrefectServer
from mps.processes import terminate
from tests.lakehouse.conftest import S3Endpoint, s3_endpoint  # noqa: F401  (the session moto server)

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mps-landing"


def _wait_for_deployment(server: PrefectServer, name: str, proc: subprocess.Popen, log: Path, timeout: float) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve process exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{server.api_url}/deployments/name/{name}", timeout=30)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass  # the server is busy starting its services on a loaded machine
        time.sleep(1)
    raise RuntimeError(f"deployment {name} not registered within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory, s3_endpoint):  # noqa: F811
    """(server, lake root, endpoint, bucket): a real server serving the landing deployment."""
    from minio import Minio

    base = tmp_path_factory.mktemp("live")
    endpoint = s3_endpoint.url.removeprefix("http://")
    Minio(endpoint, "testing", "testing", secure=False).make_bucket(BUCKET)
    lake_root = str(base / "lake")
    with PrefectServer(base / "prefect", ui=False) as server:
        env = {
            **server.environment(),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "PYTHONPATH": str(ROOT),
        }
        log = base / "serve.log"
        cmd = [sys.executable, str(ROOT / "deployments/serve.py"), "--only", "landing", "--only", "backtest"]
        cmd += ["--landing-endpoint", endpoint, "--landing-bucket", BUCKET, "--lake-root", lake_root]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_for_deployment(server, "landing/vendor-files", proc, log, 300)
            _wait_for_deployment(server, "backtest/default", proc, log, 60)
            yield server, lake_root, endpoint, BUCKET
        finally:
            terminate(proc, 20)
            os.environ.pop("MPS_TEST_UNUSED", None)
