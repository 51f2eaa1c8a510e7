//! One error type for the library; `main` wraps it in `anyhow` with context.

use thiserror::Error;

/// Every failure the scorer reports on purpose.
#[derive(Debug, Error)]
pub enum ScorerError {
    #[error("onnx runtime library not found at {0} (pass --ort-lib or ORT_DYLIB_PATH: the libonnxruntime.so.* inside the onnxruntime wheel)")]
    OrtLibMissing(String),
    #[error("onnx runtime: {0}")]
    Ort(String),
    #[error("model contract: {0}")]
    Contract(String),
    #[error("model {path}: sha256 {actual} does not match the expected {expected}")]
    Checksum { path: String, expected: String, actual: String },
    #[error("model {path}: golden vectors differ by {max_diff:e} (> {tolerance:e})")]
    Golden { path: String, max_diff: f64, tolerance: f64 },
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error("io {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("json {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("nats: {0}")]
    Nats(String),
}

impl From<ort::Error> for ScorerError {
    fn from(e: ort::Error) -> Self {
        ScorerError::Ort(e.to_string())
    }
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for ScorerError {
    fn from(e: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        ScorerError::Ort(e.to_string())
    }
}

pub type Result<T, E = ScorerError> = std::result::Result<T, E>;

/// Read a file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ScorerError::Io { path: path.display().to_string(), source })
}
