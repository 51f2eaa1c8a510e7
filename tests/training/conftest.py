"""Training test fixtures: a real MLflow on SQLite per test, a real NATS server from the wheel.

Creating an MLflow SQLite database runs its schema migrations (tens of seconds on a busy machine),
so one migrated template is made per session and copied for each test.
"""

from __future__ import annotations

import shutil

import pytest

from mps.nats_server import NatsServer
from training.tracking import Tracker


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    Tracker(f"sqlite:///{db}", str(db.parent / "artifacts")).client().search_experiments()
    return db


@pytest.fixture
def tracker(tmp_path, mlflow_template) -> Tracker:
    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    return Tracker(f"sqlite:///{db}", str(tmp_path / "mlflow-artifacts"))


@pytest.fixture
def nats_server(tmp_path):
    with NatsServer(store_dir=tmp_path / "nats") as server:
        yield server
