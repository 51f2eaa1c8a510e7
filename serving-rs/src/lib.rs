//! MPS streaming scorer: FeatureUpdates from NATS -> the ONNX champion -> Signals.
//!
//! Layout (DESIGN sections 6-8):
//! - [`streaming`]: subjects, streams and the models bucket from contracts/streaming.json (build time);
//! - [`schema`]: the JSON-schema subset shared with Python (sizing config, risk state);
//! - [`contract`]: FeatureUpdate decoding and the reasons a message is dead-lettered;
//! - [`config`]: the sizing config shared with Python (`contracts/sizing.json`);
//! - [`model`]: ONNX Runtime loaded from the onnxruntime wheel, model metadata, sha256 and
//!   golden-vector checks, CUDA behind the `cuda` feature;
//! - [`ring`]: the preallocated per-symbol ring of the last L updates;
//! - [`signal`] and [`sizing`]: the distribution summary and position size, mirrors of
//!   `backtest/signal.py` and `backtest/sizing.py`;
//! - [`engine`]: the I/O-free core (validate, ring, micro-batch, score, swap);
//! - [`request`]: score requests from the HTTP API (request-reply on `score_request`);
//! - [`shadow`]: the challenger scored in shadow on `signals_shadow`;
//! - [`retention`]: streams trimmed below what their readers consumed (bounded NATS restarts);
//! - [`source`]: the input stream (JetStream pull consumer kept alive across NATS restarts);
//! - [`service`]: NATS wiring (JetStream durable or core subscription, KV champion watch,
//!   dead letters) and [`http`] + [`metrics`] for `/health` and `/metrics`;
//! - [`featurizer`]: the streaming featurizer (`mps-featurizer`): ticks from MARKET_DATA in,
//!   `tick_v2` FeatureUpdates out, a port of `feature_store/streaming/state.py`.

pub mod champion;
pub mod config;
pub mod contract;
pub mod engine;
pub mod error;
pub mod featurizer;
pub mod http;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod request;
pub mod retention;
pub mod ring;
pub mod schema;
pub mod service;
pub mod shadow;
pub mod signal;
pub mod sizing;
pub mod source;
pub mod streaming;
pub mod telemetry;

pub use error::{Result, ScorerError};

/// Find libonnxruntime inside a Python virtualenv's onnxruntime wheel (`<venv>/lib/python3.*/site-packages/onnxruntime/capi/`).
pub fn find_ort_in_venv(venv: &std::path::Path) -> Option<std::path::PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    for py in lib.flatten() {
        let capi = py.path().join("site-packages/onnxruntime/capi");
        if let Ok(entries) = std::fs::read_dir(&capi) {
            let mut found: Vec<_> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.1"))
                })
                .collect();
            found.sort();
            if let Some(p) = found.pop() {
                return Some(p);
            }
        }
    }
    None
}
