//! Shared helpers for the integration tests: repo paths and the ONNX Runtime from the wheel.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn contracts() -> PathBuf {
    repo_root().join("contracts")
}

pub fn model_v1() -> PathBuf {
    contracts().join("models/tick_tiny/v1/tick_tiny.onnx")
}

pub fn model_v2() -> PathBuf {
    contracts().join("models/tick_tiny/v2/tick_tiny.onnx")
}

/// Load libonnxruntime from ORT_DYLIB_PATH or the repo's .venv; fail loudly if absent.
pub fn init_ort() {
    let lib = std::env::var("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .ok()
        .or_else(|| mps_scorer::find_ort_in_venv(&repo_root().join(".venv")))
        .expect("libonnxruntime not found: run `uv sync` (onnxruntime wheel) or set ORT_DYLIB_PATH");
    mps_scorer::model::init_runtime(&lib).expect("load onnx runtime");
}
