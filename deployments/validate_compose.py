"""Validate deployments/docker-compose.yml without docker: the Compose specification, then the references.

    .venv/bin/python -m deployments.validate_compose [FILE]

1. The Compose specification: the file (YAML anchors and merge keys resolved, as ``docker compose``
   does) is parsed by ``compose-spec`` (a dev dependency: Rust bindings of a spec-compliant parser
   plus pydantic models of the compose-spec JSON schema), which refuses unknown keys, malformed ports,
   durations and the like.
2. References, which a schema cannot see: every service has an image or a build whose context and
   Dockerfile exist; ``depends_on`` names services, ``service_healthy`` ones have a healthcheck and
   ``service_completed_successfully`` ones are one-shot jobs; bind mounts exist and named volumes
   are declared; host ports are not taken twice; every long-running service has a healthcheck;
   repository paths a command names (``/app/...`` in the image, ``--prefect-file``) exist.

Where docker exists, ``docker compose -f deployments/docker-compose.yml config -q`` checks more
(interpolation, image pulls); this runs anywhere, in the tests too.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
COMPOSE = DEPLOY / "docker-compose.yml"
APP = "/app/"  # the repository root inside the MPS image (Dockerfile.mps: WORKDIR /app, COPY . .)


def load(path: Path = COMPOSE) -> dict:
    """The compose file as docker reads it: YAML anchors and ``<<`` merge keys resolved."""
    return yaml.safe_load(path.read_text())


def spec_problems(compose: dict) -> list[str]:
    """Deviations from the Compose specification (empty when the file conforms)."""
    from compose_spec import PyCompose

    try:
        PyCompose.from_json(json.dumps(compose)).to_spec()
    except ValueError as exc:
        return [f"compose specification: {exc}"]
    return []


def _depends(svc: dict) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def _command_text(svc: dict) -> str:
    parts = [svc.get(k) for k in ("entrypoint", "command")]
    return " ".join(" ".join(p) if isinstance(p, list) else str(p) for p in parts if p)


def reference_problems(compose: dict, base: Path = DEPLOY, root: Path = ROOT) -> list[str]:
    """What the schema cannot check: images/builds, dependencies, mounts, ports, healthchecks, paths."""
    out: list[str] = []
    services: dict[str, dict] = compose.get("services") or {}
    volumes = set(compose.get("volumes") or {})
    one_shot = {d for s in services.values() for d, c in _depends(s).items() if c == "service_completed_successfully"}
    ports: dict[str, str] = {}
    for name, svc in services.items():
        where = f"services.{name}"
        if "image" not in svc and "build" not in svc:
            out.append(f"{where}: neither image nor build")
        build = svc.get("build")
        if build:
            context = base / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not context.is_dir() or not dockerfile.is_file():
                out.append(f"{where}.build: {dockerfile} does not exist")
        for dep, condition in _depends(svc).items():
            if dep not in services:
                out.append(f"{where}.depends_on: no service {dep!r}")
            elif condition == "service_healthy" and "healthcheck" not in services[dep]:
                out.append(f"{where}.depends_on: {dep} has no healthcheck to wait for")
            elif condition == "service_completed_successfully" and services[dep].get("restart") in ("always",):
                out.append(f"{where}.depends_on: {dep} restarts always, so it never completes")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                if not (base / source).exists():
                    out.append(f"{where}.volumes: bind mount {source} does not exist")
            elif source and source not in volumes:
                out.append(f"{where}.volumes: named volume {source!r} is not declared under volumes")
        for port in svc.get("ports") or []:
            host = str(port).split(":")[0] if ":" in str(port) else None
            if host is not None and host in ports:
                out.append(f"{where}.ports: host port {host} is also published by {ports[host]}")
            elif host is not None:
                ports[host] = name
        if name not in one_shot and "healthcheck" not in svc:
            out.append(f"{where}: a long-running service without a healthcheck")
        text = _command_text(svc)
        for path in re.findall(re.escape(APP) + r"([\w./-]+)", text):
            if not (root / path).exists():
                out.append(f"{where}: {APP}{path} is not in the repository (the image copies it)")
        for path in re.findall(r"--prefect-file\s+(\S+)", text):
            if not (root / path).is_file():
                out.append(f"{where}: --prefect-file {path} does not exist")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print every problem of the compose file; exit 1 if there is any."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else COMPOSE
    compose = load(path)
    problems = spec_problems(compose) + reference_problems(compose, path.resolve().parent)
    for p in problems:
        print(p)
    print(
        f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'} ({len(compose.get('services', {}))} services)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
