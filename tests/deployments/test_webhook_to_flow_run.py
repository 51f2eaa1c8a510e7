"""End to end: a signed vendor webhook -> the API -> a Prefect event -> the deployment trigger ->
the landing flow run (served by a real serve process) reaches Completed and settles the file.

Also: the same deployment started directly (the UI's Run button) runs to Completed, and a file
that cannot be ingested is moved to rejected/ with its reason.
"""

from __future__ import annotations

import io
import json
import time

import httpx
from fastapi.testclient import TestClient
from minio import Minio

from lakehouse.storage import Lake
from lakehouse.tables import TABLES
from lakehouse.webhooks import signed_headers
from mps.api.app import create_app
from mps.api.services import Services
from mps.api.settings import ApiSettings

SECRET = "vendor-secret-" + "q" * 24
AAPL = b"""Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,183.09,180.88,181.91,181.22,71983600
"""


def _put(endpoint: str, bucket: str, key: str, data: bytes) -> None:
    Minio(endpoint, "testing", "testing", secure=False).put_object(bucket, key, io.BytesIO(data), len(data))


def _wait_run(api_url: str, deployment_id: str, n_runs: int, timeout: float = 240) -> list[dict]:
    """Wait until ``n_runs`` runs of the deployment exist and all are final; return them."""
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
        try:
            runs = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=30).json()
        except httpx.HTTPError:
            continue
        manual = [r for r in runs if r["state"]["type"] != "SCHEDULED"]
        if len(manual) >= n_runs and all(r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") for r in manual):
            return manual
        time.sleep(1)
    raise AssertionError(f"flow runs not final in {timeout:.0f}s: {[(r['name'], r['state']['type']) for r in runs]}")


def test_vendor_webhook_starts_the_landing_flow_which_completes(live_stack, lake):
    server, lake_root, endpoint, bucket = live_stack
    key = "landing/tabular/yahoofinance-AAPL-2024.csv"
    _put(endpoint, bucket, key, AAPL)
    dep = httpx.get(f"{server.api_url}/deployments/name/landing/vendor-files").json()

    settings = ApiSettings(
        keys={"k": "k" * 40}, webhook_secrets={"vendor-file": SECRET}, prefect_api_url=server.api_url
    )
    with TestClient(create_app(Services(settings, lake))) as api:
        body = json.dumps({"key": key, "vendor": "yahoo"}).encode()
        sent = int(time.time())
        r = api.post("/webhooks/vendor-file", content=body, headers=signed_headers(SECRET, body, sent, "x", "d-1"))
        assert r.status_code == 202, r.text
        assert r.json()["event"] == "mps.webhook.vendor-file"
        # a retry is signed anew: another timestamp (the clock may not have moved a second since the first)
        headers = signed_headers(SECRET, body, sent - 1, "x", "d-2")
        assert api.post("/webhooks/vendor-file", content=body, headers=headers).status_code == 202  # vendor retried
        assert api.post("/webhooks/vendor-file", content=body, headers=headers).status_code == 409  # replay

    runs = _wait_run(server.api_url, dep["id"], 2)  # the retry is a second event: a second run, which must no-op
    assert [r["state"]["type"] for r in runs] == ["COMPLETED", "COMPLETED"], [r["state"] for r in runs]
    assert {r["parameters"]["key"] for r in runs} == {key}  # templated from the event's payload

    client = Minio(endpoint, "testing", "testing", secure=False)
    names = {o.object_name for o in client.list_objects(bucket, recursive=True)}
    assert "processed/tabular/yahoofinance-AAPL-2024.csv" in names and key not in names
    account = json.loads(client.get_object(bucket, "processed/tabular/yahoofinance-AAPL-2024.csv.account.json").read())
    assert account["rows_read"] == 3 and account["rows_written"] == 3 and account["balanced"]
    bars = Lake(lake_root).read(TABLES["bronze.bars"])
    assert sorted(bars.filter(bars["symbol_id"] == "AAPL:US")["close"].to_list()) == [181.91, 184.25, 185.64]


def test_the_landing_deployment_runs_from_the_run_button_and_rejects_a_bad_file(live_stack):
    server, _, endpoint, bucket = live_stack
    bad = "landing/tabular/yahoofinance-MSFT-2024.csv"
    _put(endpoint, bucket, bad, b"this is not,a yahoo file\n1,2\n")
    dep = httpx.get(f"{server.api_url}/deployments/name/landing/vendor-files").json()
    before = len(
        [
            r
            for r in httpx.post(
                f"{server.api_url}/flow_runs/filter", json={"deployments": {"id": {"any_": [dep["id"]]}}}
            ).json()
            if r["state"]["type"] != "SCHEDULED"
        ]
    )
    for _ in range(5):  # a busy server answers 503 (its database locked); Prefect's own client retries those
        created = httpx.post(
            f"{server.api_url}/deployments/{dep['id']}/create_flow_run", json={"parameters": {"key": bad}}
        )
        if created.status_code != 503:
            break
        time.sleep(1.0)
    assert created.status_code == 201, created.text
    runs = _wait_run(server.api_url, dep["id"], before + 1)
    run = next(r for r in runs if r["id"] == created.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    client = Minio(endpoint, "testing", "testing", secure=False)
    account = json.loads(client.get_object(bucket, "rejected/tabular/yahoofinance-MSFT-2024.csv.account.json").read())
    assert account["settled_to"].startswith("rejected/") and (account.get("error") or account.get("failures"))
