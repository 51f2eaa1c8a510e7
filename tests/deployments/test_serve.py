"""Deployments: built from the strategy's schedules, equal to prefect.yaml, registered and triggerable."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.strategy import load_strategy
from deployments.serve import DEPLOYMENT_NAMES, deployments

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "featurize": "flows/featurize.py:featurize",
    "ingest": "flows/ingest.py:ingest",
    "reconcile": "flows/reconcile.py:reconcile",
    "continuous-futures": "flows/continuous_futures.py:continuous_futures",
    "maintain": "flows/maintain.py:maintain",
    "backtest": "flows.backtest.backtest",  # a module path (a script named backtest would hide the package)
}
ALL_FLOWS = {"ingest", "reconcile", "featurize", "train", "promote", "backtest", "maintain", "pipeline"}


def _by_flow(training: bool = False) -> dict:
    return {d.flow_name: d for d in deployments(load_strategy(), training=training)}


def test_deployments_take_the_strategy_schedules_and_demo_parameters():
    strategy, built = load_strategy(), _by_flow()
    assert {name: d.entrypoint for name, d in built.items()} == EXPECTED
    crons = {name: (d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone) for name, d in built.items()}
    assert crons["ingest"] == (strategy.schedules.ingest, "UTC")
    assert crons["reconcile"] == (strategy.schedules.reconcile, "UTC")
    assert built["ingest"].parameters["source"] == "simulator"
    assert built["ingest"].parameters["params"] == {"symbols": strategy.universe.symbols}  # no fixed day
    assert built["ingest"].parameters["catch_up"] and built["reconcile"].parameters["catch_up"]
    assert built["backtest"].parameters["model"] == strategy.models[0].name


def test_every_flow_has_a_deployment_startable_with_its_defaults():
    """The Prefect UI's Run button sends no parameters: every required one must be in the deployment."""
    import inspect

    built = _by_flow(training=True)
    assert ALL_FLOWS <= set(built), sorted(ALL_FLOWS - set(built))
    for name, dep in built.items():
        assert dep.schedules or name == "promote", f"{name} has no cron schedule"
        module, attr = dep.entrypoint.split(":") if ":" in dep.entrypoint else dep.entrypoint.rsplit(".", 1)
        fn = getattr(__import__(module.removesuffix(".py").replace("/", "."), fromlist=["x"]), attr).fn
        required = {p.name for p in inspect.signature(fn).parameters.values() if p.default is inspect.Parameter.empty}
        assert required <= set(dep.parameters), f"{name}: required {required - set(dep.parameters)} not defaulted"


def test_prefect_yaml_declares_the_same_deployments():
    spec = yaml.safe_load((ROOT / "deployments/prefect.yaml").read_text())
    declared = {d["entrypoint"]: d for d in spec["deployments"]}
    for name, built in _by_flow(training=True).items():
        d = declared[built.entrypoint]
        assert d["name"] == built.name and d["work_pool"]["name"] == "mps-process"
        assert d["parameters"] == built.parameters, name
        assert [(s["cron"], s["timezone"]) for s in d.get("schedules", [])] == [
            (s.schedule.cron, s.schedule.timezone) for s in built.schedules
        ]
        assert sorted(d["tags"]) == sorted(built.tags)


def test_deployments_register_and_a_run_can_be_triggered(prefect_harness):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.utilities.asyncutils import run_coro_as_sync

    built = _by_flow()
    ids = {name: d.apply() for name, d in built.items()}

    async def read_back():
        async with get_client() as client:
            return {name: await client.read_deployment_by_name(f"{name}/{DEPLOYMENT_NAMES[name]}") for name in built}

    stored = run_coro_as_sync(read_back())
    for name, dep in stored.items():
        assert dep.id == ids[name] and dep.entrypoint == EXPECTED[name]
        assert [s.schedule.cron for s in dep.schedules] == [s.schedule.cron for s in built[name].schedules]
        assert dep.parameters == built[name].parameters
    run = run_deployment("reconcile/rolling", timeout=0)
    assert run.state.is_scheduled() and run.deployment_id == ids["reconcile"]
    assert run.parameters == built["reconcile"].parameters


def test_landing_trigger_is_declared_alike_in_serve_and_prefect_yaml():
    from deployments.serve import VENDOR_FILE_EVENT, deployments, landing_trigger

    spec = yaml.safe_load((ROOT / "deployments/prefect.yaml").read_text())
    (declared,) = [d for d in spec["deployments"] if d["entrypoint"] == "flows/landing.py:landing"]
    (trigger,) = declared["triggers"]
    built = landing_trigger()
    assert set(trigger["expect"]) == set(built.expect) == {VENDOR_FILE_EVENT}
    assert trigger["parameters"] == built.parameters == {"key": "{{ event.payload.key }}"}
    (dep,) = [d for d in deployments(landing_endpoint="minio:9000") if d.name == "vendor-files"]
    assert dep.parameters["endpoint"] == "minio:9000" and dep.triggers[0].expect == built.expect
