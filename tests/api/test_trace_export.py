"""The API's opt-in trace exporter: ``MPS_API_TRACES=jsonl:PATH`` writes the scorer's JSON-lines fields."""

from __future__ import annotations

import json

import pytest

from mps.api.observability import inject_headers, provider_from_spec, tracer_for


def test_api_traces_are_off_unless_configured(monkeypatch):
    monkeypatch.delenv("MPS_API_TRACES", raising=False)
    with tracer_for().start_as_current_span("POST /score"):
        assert inject_headers({}) == {}, "no recording span: nothing to propagate"


def test_jsonl_spec_exports_one_line_per_span_with_w3c_ids(tmp_path, monkeypatch):
    path = tmp_path / "api-spans.jsonl"
    monkeypatch.setenv("MPS_API_TRACES", f"jsonl:{path}")
    tracer = tracer_for()
    with tracer.start_as_current_span("POST /score") as outer, tracer.start_as_current_span("nats.request") as inner:
        headers = inject_headers({})
    provider = tracer_for.__globals__["_ENV_PROVIDER"][f"jsonl:{path}"]
    provider.force_flush()
    spans = {s["name"]: s for s in map(json.loads, path.read_text().splitlines())}
    trace_id = f"{outer.get_span_context().trace_id:032x}"
    assert set(spans) == {"POST /score", "nats.request"}
    assert spans["nats.request"]["trace_id"] == trace_id
    assert spans["nats.request"]["parent_span_id"] == spans["POST /score"]["span_id"]
    assert spans["POST /score"]["parent_span_id"] == "" and spans["nats.request"]["service"] == "mps-api"
    span_id = f"{inner.get_span_context().span_id:016x}"
    assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-"), "the NATS request carries the inner span"
    provider.shutdown()


@pytest.mark.parametrize("spec", ["jsonl:", "zipkin:x", "on"])
def test_bad_specs_are_refused_with_the_variable_named(spec):
    with pytest.raises(ValueError, match="MPS_API_TRACES"):
        provider_from_spec(spec)
