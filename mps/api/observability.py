"""Prometheus metrics, structured JSON logs and OpenTelemetry traces for the API.

Metrics (seed MPS section 11) are read from the tables that hold them at scrape time, where the
data exists: ``data_freshness_ms`` and ``stale_rate`` from silver.freshness, ``outlier_rate`` from
silver.vendor_stats; ``score_latency_ms`` is measured here. ``drift_psi``, ``oos_sharpe``, ``ece``
and ``abort_dd_intraday`` come from gold.monitoring (``lakehouse.monitoring.record_metrics``: the
backtest, promote and drift paths write them), labelled by model; absent rather than zero until
written. Logs are one JSON object a line, with any token, signature or secret redacted. Traces: a
FastAPI span per request and the NATS request as a child span, whose W3C context (``traceparent``)
rides in the NATS request's headers to the Rust scorer (its ``score.request`` span continues the
trace and sets itself as the parent in the reply's headers). The exporter is off unless a tracer
provider is given or ``MPS_API_TRACES`` names one: ``jsonl:PATH`` (one JSON object per finished
span, the fields of the scorer's ``--traces jsonl:PATH``) or ``otlp[:URL]`` (needs the
``opentelemetry-exporter-otlp-proto-http`` package).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

_SECRET = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9\-_\.=]+|(sha256=)[0-9a-f]+|((?:secret|token|password|key)[\"']?\s*[:=]\s*[\"']?)[^\s,\"'&]+"
)


def redact(text: str) -> str:
    """Mask bearer tokens, signatures and ``secret=...``-like values in ``text``."""
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + "***", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (time, level, logger, message, extra fields), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("method", "path", "status", "client", "ms", "request_id"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def json_logging(level: int = logging.INFO) -> None:
    """Route the ``mps`` and ``uvicorn`` loggers through the JSON formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("mps", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the API logs each request itself


class TableMetrics:
    """A Prometheus collector that reads the monitoring tables of the lake at scrape time."""

    def __init__(self, lake) -> None:
        self.lake = lake

    def collect(self):
        from lakehouse.tables import SILVER_FRESHNESS, SILVER_VENDOR_STATS

        fresh = self.lake.read(SILVER_FRESHNESS) if self.lake.exists(SILVER_FRESHNESS) else None
        if fresh is not None and fresh.height:
            last = fresh.sort("as_of").group_by("symbol_id", "source", maintain_order=True).last()
            g = GaugeMetricFamily("data_freshness_ms", "age of the latest data", labels=["symbol_id", "source"])
            for r in last.iter_rows(named=True):
                g.add_metric([r["symbol_id"], r["source"]], float(r["age_ms"]))
            yield g
            s = GaugeMetricFamily("stale_rate", "share of (symbol, source) series flagged stale")
            s.add_metric([], float(last["stale"].cast(float).mean()))
            yield s
        stats = self.lake.read(SILVER_VENDOR_STATS) if self.lake.exists(SILVER_VENDOR_STATS) else None
        if stats is not None and stats.height:
            last = stats.sort("window_end").group_by("source", maintain_order=True).last()
            g = GaugeMetricFamily("outlier_rate", "vendor outlier rate (latest window)", labels=["source"])
            for r in last.iter_rows(named=True):
                g.add_metric([r["source"]], float(r["outlier_rate"]))
            yield g
        yield from self._model_metrics()

    def _model_metrics(self):
        """``drift_psi``, ``oos_sharpe``, ``ece``, ``abort_dd_intraday``: the latest per model in gold.monitoring."""
        from lakehouse.monitoring import METRICS, latest_metrics

        latest = latest_metrics(self.lake)
        for name in METRICS:
            rows = latest.filter(latest["metric"] == name)
            if rows.height:
                g = GaugeMetricFamily(name, f"{name}: latest value per model (gold.monitoring)", labels=["model"])
                for r in rows.iter_rows(named=True):
                    g.add_metric([r["model"]], float(r["value"]))
                yield g


class Metrics:
    """The API's registry: request and score metrics, plus the table collector."""

    def __init__(self, lake) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mps_api_requests", "requests by route and status", ["route", "status"], registry=self.registry
        )
        self.score_latency = Histogram(
            "score_latency_ms",
            "POST /score latency in the API (ms)",
            ["mode"],
            buckets=(0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000),
            registry=self.registry,
        )
        self.webhooks = Counter("mps_webhooks_accepted", "verified webhooks", ["name"], registry=self.registry)
        self.registry.register(TableMetrics(lake))


TRACES_ENV = "MPS_API_TRACES"


class JsonLinesSpanExporter(SpanExporter):
    """Append one JSON object per finished span to ``path`` (the scorer's ``jsonl`` fields)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown()

    def export(self, spans) -> SpanExportResult:
        lines = [json.dumps(span_json(s)) + "\n" for s in spans]
        with self._lock:
            self._file.writelines(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_json(span) -> dict:
    """The JSON line of a finished SDK span: ids as lower-case hex, times in Unix nanoseconds."""
    ctx, parent = span.context, span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else "",
        "parent_is_remote": bool(parent is not None and parent.is_remote),
        "kind": span.kind.name,
        "start_unix_nano": span.start_time,
        "end_unix_nano": span.end_time,
        "attributes": {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in span.attributes.items()},
        "status": span.status.status_code.name,
        "service": "mps-api",
    }


def provider_from_spec(spec: str):
    """A tracer provider for ``off``, ``jsonl:PATH`` or ``otlp[:URL]`` (None for ``off``)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    kind, _, target = spec.partition(":")
    if spec in ("", "off"):
        return None
    if kind == "jsonl" and target:
        exporter = JsonLinesSpanExporter(target)
    elif kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ValueError(
                f"{TRACES_ENV}={spec!r}: OTLP needs the opentelemetry-exporter-otlp-proto-http package"
            ) from None
        exporter = OTLPSpanExporter(endpoint=target or None)
    else:
        raise ValueError(f"{TRACES_ENV}={spec!r}: expected off, jsonl:PATH or otlp[:URL]")
    provider = TracerProvider(resource=Resource.create({"service.name": "mps-api"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


_ENV_PROVIDER: dict[str, object] = {}


def tracer_for(tracer_provider=None):
    """The API's tracer: from ``tracer_provider`` when given, else from ``MPS_API_TRACES`` (one
    provider per spec in a process), else OpenTelemetry's global (no-op unless configured)."""
    from opentelemetry import trace

    spec = os.environ.get(TRACES_ENV, "off")
    if tracer_provider is None and spec not in ("", "off"):
        if spec not in _ENV_PROVIDER:
            _ENV_PROVIDER[spec] = provider_from_spec(spec)
        tracer_provider = _ENV_PROVIDER[spec]
    return (tracer_provider or trace.get_tracer_provider()).get_tracer("mps.api")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``, ``tracestate``: the W3C propagator) to
    outgoing NATS or HTTP headers; nothing when no span is recording."""
    from opentelemetry.propagate import inject

    inject(headers)
    return headers
