"""The prod profile's tracking: an `mlflow server` process with S3 artifacts on moto's S3 (loopback).

Slow (the server's start-up), so marked ``slow``: a run's artifacts and a registered version land
in the S3 bucket and come back through the registry.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
import vol_models as vm

from mps.processes import free_port
from training.tracking import CHALLENGER, Tracker

pytestmark = pytest.mark.slow
BUCKET = "mps-lake"


@pytest.fixture
def s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for key, value in {
        "MLFLOW_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


@pytest.fixture
def mlflow_server(s3, tmp_path, mlflow_template):
    import os
    import shutil

    port = free_port()
    db = tmp_path / "server.db"
    shutil.copy(mlflow_template, db)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--default-artifact-root",
        f"s3://{BUCKET}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the server imports all of MLflow: minutes on a loaded machine
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((tmp_path / "mlflow-server.log").read_text()[-2000:]) from None
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_runs_and_models_go_to_s3_through_the_server(mlflow_server, s3, tmp_path):
    tracker = Tracker(mlflow_server, f"s3://{BUCKET}/mlflow")
    path = vm.export_graph(1.0, "volm", "1", tmp_path / "export")
    run_id = tracker.log_run(
        "prod-test",
        "r1",
        params={"scale": 1.0},
        metrics={"model.log_score": 2.5},
        data_versions={"gold.features": 7},
        artifacts={"model": path.parent},
    )
    assert tracker.register(run_id, "volm") == "1" and tracker.alias("volm", CHALLENGER) == "1"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")["Contents"]]
    assert any(k.endswith("model/volm.onnx") for k in keys) and any(k.endswith("volm.golden.json") for k in keys)
    local = tracker.materialise("volm", "1", tmp_path / "models")
    assert local.read_bytes() == path.read_bytes()
    assert tracker.client().get_run(run_id).data.params["data.gold.features"] == "7"
