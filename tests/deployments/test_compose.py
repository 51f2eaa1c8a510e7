"""deployments/docker-compose.yml: the production-like stack is complete and its variables are documented.

Without docker, ``deployments.validate_compose`` checks it against the Compose specification
(compose-spec) and checks its references (images/builds, depends_on, healthchecks, mounts, ports,
paths); ``docker compose config`` validates it where the compose plugin exists (skipped otherwise).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deployments"
COMPOSE = DEPLOY / "docker-compose.yml"


def test_compose_declares_every_service_of_the_stack():
    spec = yaml.safe_load(COMPOSE.read_text())
    want = {"minio", "postgres", "prefect-server", "prefect-worker", "mlflow", "nats", "api", "scorer"}
    assert want <= set(spec["services"])
    assert "prefect deploy --all" in " ".join(spec["services"]["prefect-worker"]["command"])
    assert spec["services"]["api"]["environment"]["MPS_PROFILE"] == "prod"


def test_every_required_variable_is_in_the_env_example():
    required = set(re.findall(r"\$\{([A-Z_]+)(?::\?|\})", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (DEPLOY / ".env.example").read_text().splitlines() if "=" in line}
    assert required <= example, required - example


def test_compose_follows_the_compose_specification_and_its_references_resolve():
    from deployments.validate_compose import load, reference_problems, spec_problems

    compose = load()
    assert spec_problems(compose) == []
    assert reference_problems(compose) == []


def test_the_validator_finds_what_docker_compose_would_refuse():
    from deployments.validate_compose import load, reference_problems, spec_problems

    good = load()
    bad = copy.deepcopy(good)
    bad["services"]["api"]["ports"] = ["99999:8600"]
    assert "port" in spec_problems(bad)[0]
    bad = copy.deepcopy(good)
    bad["services"]["api"]["imagee"] = "typo"
    assert "imagee" in spec_problems(bad)[0]
    bad = copy.deepcopy(good)
    bad["services"]["scorer"]["depends_on"] = {"natz": {"condition": "service_healthy"}}
    del bad["services"]["mlflow"]["healthcheck"]
    bad["services"]["nats"]["ports"] = ["4222:4222", "5000:5000"]
    bad["services"]["nats"]["volumes"] = ["natsdata:/data"]
    bad["services"]["scorer"]["command"] = "/opt/mps/bin/mps-scorer --model /app/contracts/models/nope.onnx"
    bad["services"]["minio"].pop("image")
    found = "\n".join(reference_problems(bad))
    for expected in (
        "services.scorer.depends_on: no service 'natz'",
        "services.mlflow: a long-running service without a healthcheck",
        "host port 5000 is also published by",
        "named volume 'natsdata' is not declared",
        "/app/contracts/models/nope.onnx is not in the repository",
        "services.minio: neither image nor build",
    ):
        assert expected in found, (expected, found)


def test_docker_compose_config_validates():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip(
            "docker compose plugin not installed here; run `docker compose -f deployments/docker-compose.yml config`"
        )
    proc = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--env-file", str(DEPLOY / ".env.example"), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
