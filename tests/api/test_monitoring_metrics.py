"""gold.monitoring -> the API's /metrics: drift_psi, oos_sharpe, ece and abort_dd_intraday in Prometheus format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.errors import ContractError
from lakehouse.monitoring import GOLD_MONITORING, latest_metrics, record_metrics

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def _samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("model", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("drift_psi", "oos_sharpe", "ece", "abort_dd_intraday")
    }


def test_absent_until_written_then_the_latest_value_per_model(client, api_lake):
    assert _samples(client.get("/metrics").text) == {}  # nothing measured: absent, never a fake zero
    record_metrics(
        api_lake, {"oos_sharpe": 0.4, "abort_dd_intraday": 2}, ts=T0, source="backtest", run_id="r1", model="m"
    )
    later = T0 + timedelta(days=1)
    record_metrics(
        api_lake, {"oos_sharpe": 1.25, "abort_dd_intraday": 0}, ts=later, source="backtest", run_id="r2", model="m"
    )
    record_metrics(api_lake, {"drift_psi": 0.31}, ts=T0, source="drift", run_id="d1", model="m")
    record_metrics(api_lake, {"ece": 0.012, "drift_psi": float("nan")}, ts=T0, source="promote", run_id="p1", model="x")
    got = _samples(client.get("/metrics").text)
    assert got == {
        ("oos_sharpe", "m"): 1.25,
        ("abort_dd_intraday", "m"): 0.0,
        ("drift_psi", "m"): 0.31,
        ("ece", "x"): 0.012,
    }


def test_re_recording_a_run_replaces_its_rows(lake):
    for value in (0.5, 0.7):
        record_metrics(lake, {"oos_sharpe": value}, ts=T0, source="backtest", run_id="same", model="m")
    assert lake.read(GOLD_MONITORING).height == 1
    assert latest_metrics(lake).row(0, named=True) == {"metric": "oos_sharpe", "model": "m", "value": 0.7}


def test_unknown_metric_and_naive_time_are_refused(lake):
    with pytest.raises(ContractError, match="unknown metric"):
        record_metrics(lake, {"sharpe": 1.0}, ts=T0, source="backtest", run_id="r")
    with pytest.raises(ContractError, match="timezone"):
        record_metrics(lake, {"ece": 0.1}, ts=T0.replace(tzinfo=None), source="promote", run_id="r")
