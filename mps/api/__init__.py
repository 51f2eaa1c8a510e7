"""The MPS HTTP API (DESIGN section 12): FastAPI over the lake, the scorer, Prefect and NATS.

``create_app(settings, services)`` builds the application; ``mps api`` (or ``mps up``) serves it
with uvicorn. Layout: ``settings`` (typed settings from the profile and the environment),
``auth`` (JWT with rotating keys, scopes, entitlements), ``limits`` (per-client token buckets,
body size), ``errors`` (one JSON error model), ``routes_*`` (the endpoints), ``webhooks``
(inbound HMAC verification -> Prefect events), ``observability`` (Prometheus metrics, JSON logs,
OpenTelemetry traces).
"""
