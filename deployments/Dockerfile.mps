# The MPS image: the Python environment from uv.lock plus the Rust scorer built against the
# onnxruntime wheel's libonnxruntime (one ORT). Build context: the repository root.
FROM python:3.11-slim AS base
RUN apt-get update && apt-get install -y --no-install-recommends curl build-essential && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-install-project
COPY . .
RUN uv sync --frozen
ENV PATH=/app/.venv/bin:$PATH

FROM rust:1.90-slim AS scorer
WORKDIR /src
COPY serving-rs ./serving-rs
COPY contracts ./contracts
RUN cd serving-rs && cargo build --release --bin mps-scorer

FROM base
COPY --from=scorer /src/serving-rs/target/release/mps-scorer /opt/mps/bin/mps-scorer
# the onnxruntime wheel ships libonnxruntime.so.1.<minor>.<patch> only: give it a stable name
RUN cd /app/.venv/lib/python3.11/site-packages/onnxruntime/capi && ln -sf "$(ls libonnxruntime.so.1.* | head -1)" libonnxruntime.so.1
ENV ORT_DYLIB_PATH=/app/.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1
