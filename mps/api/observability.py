"""Prometheus metrics, structured JSON logs and OpenTelemetry traces for the API.

Metrics (seed MPS section 11) are read from the tables that hold them at scrape time, where the
data exists: ``data_freshness_ms`` and ``stale_rate`` from silver.freshness, ``outlier_rate`` from
silver.vendor_stats; ``score_latency_ms`` is measured here. ``drift_psi``, ``oos_sharpe``, ``ece``
and ``abort_dd_intraday`` come from gold.monitoring (``lakehouse.monitoring.record_metrics``: the
backtest, promote and drift paths write them), labelled by model; absent rather than zero until
written. Logs are one JSON object a line, with any token, signature or secret redacted. Traces: a
FastAPI span per request and the NATS request as a child span; the exporter is off unless a tracer
provider is given.
"""

from __future__ import annotations

import json
import logging
import re
import time

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


def tracer_for(tracer_provider=None):
    """The API's tracer: from ``tracer_provider`` when given, else OpenTelemetry's no-op default."""
    from opentelemetry import trace

    return (tracer_provider or trace.get_tracer_provider()).get_tracer("mps.api")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``) to outgoing NATS or HTTP headers."""
    from opentelemetry.propagate import inject

    inject(headers)
    return headers
