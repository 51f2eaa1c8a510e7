"""``mps up`` / ``mps down`` / ``mps status``: the local stack as detached, supervised processes.

Services: NATS (JetStream), the Prefect server, the serve process with every deployment, the MLflow
UI, the Rust scorer, the streaming featurizer, two signal sink replicas and the API. The sinks share one
JetStream durable, so when one dies (or is still importing after a restart: a Python cold start takes
seconds) the other keeps storing; their keyed writes never double a row.
Each runs in its own process group, logs to ``<state_dir>/stack/logs/<name>.log``, and is
recorded (pid, port, URL, health check) in ``<state_dir>/stack/stack.json``. ``down`` stops the
groups in reverse order (SIGTERM, then SIGKILL) together with any descendant that left its group,
so nothing is orphaned.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import ServiceError
from mps.processes import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALL = ("nats", "prefect", "mlflow", "serve", "featurizer", "scorer", "sink", "api")
SINK_REPLICAS = 2


@dataclass
class Service:
    name: str
    cmd: list[str]
    health: str  # http URL answering 200, or "pid" (alive is healthy)
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    needs: tuple[str, ...] = ()
    kind: str = ""  # the ALL entry it belongs to when it is one of several replicas ("sink" for "sink2")

    @property
    def role(self) -> str:
        """The service kind ``--only`` selects (the name, or the replicated kind)."""
        return self.kind or self.name


def stack_dir(profile) -> Path:
    return Path(profile.state_dir) / "stack"


def _api_keys(folder: Path) -> str:
    """The API's JWT keys (``MPS_API_KEYS``), else a generated one kept in ``api-keys`` (mode 600)."""
    if os.environ.get("MPS_API_KEYS"):
        return os.environ["MPS_API_KEYS"]
    path = folder / "api-keys"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(f"local-{int(time.time())}:{secrets.token_urlsafe(48)}")
    return path.read_text().strip()


def plan(profile, profile_name: str, only: set[str] | None = None, free_ports: bool = False) -> list[Service]:
    """The services of the stack for ``profile`` (all, or ``only``), with ports and commands."""
    from mps.nats_server import nats_server_binary
    from mps.scorer_process import ort_library, scorer_binary

    folder = stack_dir(profile)
    port = lambda default: free_port() if free_ports else default  # noqa: E731
    nats_port = port(int(profile.nats.url.rsplit(":", 1)[-1]))
    nats_url = f"nats://127.0.0.1:{nats_port}"
    prefect_port, mlflow_port, api_port, nats_http = port(4200), port(5000), port(profile.api.port), free_port()
    scorer_http = free_port()
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    prefect_env = {
        "PREFECT_HOME": profile.prefect.home,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    services = [
        Service(
            "nats",
            [
                str(nats_server_binary()),
                "-a",
                "127.0.0.1",
                "-p",
                str(nats_port),
                "-js",
                "-sd",
                profile.nats.store_dir,
                "-m",
                str(nats_http),
            ],
            f"http://127.0.0.1:{nats_http}/healthz",
            nats_url,
        ),
        Service(
            "prefect",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
                "--analytics-off",
            ],
            f"{prefect_api}/health",
            f"http://127.0.0.1:{prefect_port}",
            prefect_env,
        ),
        Service(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                profile.mlflow.tracking_uri,
                "--default-artifact-root",
                profile.mlflow.artifact_root,
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            f"http://127.0.0.1:{mlflow_port}/health",
            f"http://127.0.0.1:{mlflow_port}",
        ),
        Service(
            "serve",
            [sys.executable, str(REPO_ROOT / "deployments/serve.py"), "--profile", profile_name],
            "pid",
            "",
            {**prefect_env, "PYTHONPATH": str(REPO_ROOT)},
            needs=("prefect",),
        ),
        Service(
            "scorer",
            [
                str(scorer_binary(build=False)),
                "--nats",
                nats_url,
                "--ort-lib",
                str(ort_library()),
                "--http",
                f"127.0.0.1:{scorer_http}",
                "--model",
                str(_bootstrap_model()),
            ],
            f"http://127.0.0.1:{scorer_http}/health",
            f"http://127.0.0.1:{scorer_http}",
            needs=("nats",),
        ),
        Service(
            "featurizer",
            [str(BIN / "mps"), "featurizer", "--profile", profile_name, "--nats-url", nats_url, "--publish-jetstream"],
            "pid",
            needs=("nats",),
        ),
        *(
            Service(
                "sink" if i == 1 else f"sink{i}",
                [sys.executable, "-m", "mps.sink_process", "--nats", nats_url, "--profile", profile_name],
                "pid",
                needs=("nats",),
                kind="sink",
            )
            for i in range(1, SINK_REPLICAS + 1)
        ),
        Service(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "mps.api.app:app_factory",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--no-access-log",
            ],
            f"http://127.0.0.1:{api_port}/health",
            f"http://127.0.0.1:{api_port}/docs",
            {
                "MPS_PROFILE": profile_name,
                "MPS_NATS_URL": nats_url,
                "PREFECT_API_URL": prefect_api,
                "MPS_API_KEYS": _api_keys(folder),
            },
        ),
    ]
    return [s for s in services if not only or s.role in only]


def _bootstrap_model() -> Path:
    """The packaged tiny model, scored until promote writes a champion pointer."""
    from core.resources import contracts_dir

    return Path(contracts_dir()) / "models" / "tick_tiny" / "v1" / "tick_tiny.onnx"


def healthy(svc: Service) -> bool:
    """Whether ``svc`` is alive and (for HTTP checks) answers 200."""
    import psutil

    if svc.pid is None or not psutil.pid_exists(svc.pid) or psutil.Process(svc.pid).status() == psutil.STATUS_ZOMBIE:
        return False
    if svc.health == "pid":
        return True
    try:
        with urllib.request.urlopen(svc.health, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def up(
    profile,
    profile_name: str = "local",
    only: set[str] | None = None,
    free_ports: bool = False,
    timeout: float = 300.0,
    echo=print,
) -> list[Service]:
    """Start the stack (detached) and wait for every health check; stop it all and raise on failure."""
    folder = stack_dir(profile)
    if (folder / "stack.json").exists() and any(healthy(s) for s in read_state(profile)):
        raise ServiceError(f"the stack is already up (see `mps status`; state in {folder})")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for d in (profile.prefect.home, profile.nats.store_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    services = plan(profile, profile_name, only, free_ports)
    started: list[Service] = []
    try:
        pending = list(services)
        deadline = time.monotonic() + timeout
        while pending:
            for svc in [
                s for s in pending if all(_ready(n, started) for n in s.needs if n in {x.name for x in services})
            ]:
                _start(svc, folder)
                started.append(svc)
                pending.remove(svc)
                _save(folder, started)
            if time.monotonic() > deadline:
                raise ServiceError(f"timed out starting {[s.name for s in pending]}")
            time.sleep(0.5)
        _wait_all(started, folder, deadline)
    except BaseException:
        stop_services(started)
        (folder / "stack.json").unlink(missing_ok=True)
        raise
    for s in started:
        echo(f"{s.name:8} pid {s.pid:<7} {s.url or '(no port)'}   log {folder / 'logs' / (s.name + '.log')}")
    return started


def _ready(name: str, started: list[Service]) -> bool:
    return any(s.name == name and healthy(s) for s in started)


def _start(svc: Service, folder: Path) -> None:
    if not Path(svc.cmd[0]).exists():
        raise ServiceError(f"{svc.name}: {svc.cmd[0]} not found (build the scorer with `make rust`)")
    # The profile's relative paths resolve against the cwd: run every service where the state lives.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **svc.env}
    with open(folder / "logs" / f"{svc.name}.log", "ab") as log:
        proc = subprocess.Popen(
            svc.cmd,
            env=env,
            cwd=folder.parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    svc.pid = proc.pid


def _wait_all(services: list[Service], folder: Path, deadline: float) -> None:
    waiting = list(services)
    while waiting:
        waiting = [s for s in waiting if not healthy(s)]
        dead = [
            s
            for s in waiting
            if s.pid is None or subprocess.call(["kill", "-0", str(s.pid)], stderr=subprocess.DEVNULL)
        ]
        if dead or (waiting and time.monotonic() > deadline):
            s = (dead or waiting)[0]
            tail = (folder / "logs" / f"{s.name}.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"{s.name} {'exited' if dead else 'not healthy in time'}; log tail:\n{tail}")
        time.sleep(0.5)


def _save(folder: Path, services: list[Service]) -> None:
    state = [{k: v for k, v in asdict(s).items() if k != "env"} for s in services]  # env holds secrets
    (folder / "stack.json").write_text(json.dumps(state, indent=2))


def read_state(profile) -> list[Service]:
    """The services ``up`` recorded (empty when the stack is down)."""
    path = stack_dir(profile) / "stack.json"
    if not path.exists():
        return []
    return [Service(**{**d, "needs": tuple(d.get("needs", ()))}) for d in json.loads(path.read_text())]


def stop_services(services: list[Service], timeout: float = 20.0) -> None:
    """SIGTERM each service's process group (reverse order) and its strays; SIGKILL what remains."""
    import psutil

    for svc in reversed(services):
        if svc.pid is None or not psutil.pid_exists(svc.pid):
            continue
        try:
            procs = [psutil.Process(svc.pid), *psutil.Process(svc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        try:
            os.killpg(svc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)


def down(profile, echo=print) -> int:
    """Stop the recorded stack; return how many services were stopped."""
    services = read_state(profile)
    stop_services(services)
    (stack_dir(profile) / "stack.json").unlink(missing_ok=True)
    for s in reversed(services):
        echo(f"stopped {s.name} (pid {s.pid})")
    return len(services)
