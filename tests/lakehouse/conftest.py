"""Real servers for lakehouse tests: a PostgreSQL 15 server and a moto S3 endpoint.

Both are session-scoped, bound to free loopback ports, and stopped at the end of the session.
``postgres_server`` runs the PostgreSQL binaries as an unprivileged OS user when the tests run as
root (postgres refuses root); ``s3_endpoint`` is moto's ThreadedMotoServer in a child process (DESIGN section 9).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mps.processes import free_port

PG_PASSWORD = "mps-test-secret-pw"


@pytest.fixture(scope="session")
def synthetic_trades():
    """Factory of ``n`` bronze.trades rows this suite writes itself (no vendor data needed).

    A BAC-like random walk on the 2013-10-07 session: increasing timestamps (several prints may share
    one, told apart by ``seq``), cent prices, round-lot sizes, a few exchanges and condition codes.
    Tests of storage back ends (S3, PostgreSQL) use it so they run on a fresh clone.
    """
    import numpy as np
    import polars as pl

    def make(n: int, seed: int = 7) -> pl.DataFrame:
        rng = np.random.default_rng(seed)
        start = 1_381_150_800_000_000_000  # 2013-10-07 13:00 UTC
        gaps = rng.exponential(40_000_000, n).astype(np.int64) * rng.integers(0, 2, n)  # ~half share a stamp
        ts = start + np.cumsum(gaps)
        seq = np.zeros(n, dtype=np.int64)
        for i in range(1, n):
            seq[i] = seq[i - 1] + 1 if ts[i] == ts[i - 1] else 0
        price = np.round(13.9 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n, p=[0.2, 0.6, 0.2])), 2)
        return pl.DataFrame(
            {
                "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
                "symbol_id": ["BAC:US"] * n,
                "price": price,
                "size": (rng.integers(1, 20, n) * 100).astype(np.float64),
                "side": pl.Series([None] * n, dtype=pl.Int8),
                "exchange": rng.choice(["P", "T", "N", "Z"], n).tolist(),
                "conditions": rng.choice(["2000", "20002020"], n).tolist(),
                "seq": seq,
            }
        )

    return make


@pytest.fixture(scope="session")
def bac_trades(shared_data):
    """Factory of real trades: the first ``n`` BAC ticks of 2013-10-07 as bronze.trades payload.

    Read once through the LEAN adapter (ms since midnight ET -> UTC ns), so tests that need real
    trades elsewhere (S3, the PostgreSQL seed) do not parse LEAN files again.
    """
    import polars as pl

    from lakehouse.sources import lean

    params = lean.Params(root=shared_data / "lean", files=(Path("equity/usa/tick/bac/20131007_trade.zip"),))
    (batch,) = lean.batches(params, lambda: None)
    trades = pl.concat([c.data for c in batch.chunks]).drop("_row", "_raw", strict=False)
    return lambda n: trades.head(n)


def _pg_bin() -> Path | None:
    for d in [os.environ.get("MPS_PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if d and Path(d, "postgres").exists() and Path(d, "initdb").exists():
            return Path(d)
    found = shutil.which("postgres")
    return Path(found).parent if found and shutil.which("initdb") else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={self.user} password={self.password}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a fresh empty database and return its name (tests stay isolated)."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (password auth over TCP on 127.0.0.1), stopped after the session."""
    import psycopg

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (set MPS_PG_BIN to their bin directory)")
    base = Path(tempfile.mkdtemp(prefix="mps-pg-"))
    run_as: dict = {}
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as nobody, in a dir it owns
        nobody = pwd.getpwnam("nobody")
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    (base / "pw").write_text(PG_PASSWORD + "\n")
    (base / "sock").mkdir()
    if run_as:
        for p in (base, base / "pw", base / "sock"):
            os.chown(p, run_as["user"], run_as["group"])
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(base)}
    subprocess.run(
        [
            bindir / "initdb",
            "-D",
            base / "data",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={base / 'pw'}",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=base,
        **run_as,
    )
    port = free_port()
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(
        [
            bindir / "postgres",
            "-D",
            base / "data",
            "-p",
            str(port),
            "-k",
            base / "sock",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=30",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=base,
        **run_as,
    )
    server = PostgresServer("127.0.0.1", port, "postgres", PG_PASSWORD)
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(server.dsn(), connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                raise RuntimeError(f"PostgreSQL did not start: {(base / 'server.log').read_text()[-2000:]}") from None
            time.sleep(0.2)
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    region: str = "us-east-1"
    access_key: str = "testing"
    secret_key: str = "testing"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, prefix: str = "lake") -> str:
        """Create a fresh bucket and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_options(self) -> dict[str, str]:
        """deltalake/object_store options for this endpoint (conditional put by etag, as moto enforces)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "aws_conditional_put": "etag",
        }


_MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
sys.stdin.read()  # run until the parent closes our stdin
server.stop()
"""


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's ThreadedMotoServer on a free loopback port, in its own process, stopped after the session.

    In-process it would deadlock: deltalake calls that hold the GIL (``history``) wait on HTTP
    requests that the server's Python threads cannot answer without it.
    """
    import sys
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto S3 server did not start") from None
            time.sleep(0.2)
    try:
        yield S3Endpoint(url)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
