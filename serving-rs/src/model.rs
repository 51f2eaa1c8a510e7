//! The champion model: ONNX Runtime session, its contract metadata and its golden-vector check.
//!
//! One ONNX Runtime for Python and Rust: `init_runtime` loads the `libonnxruntime` shipped inside
//! the installed `onnxruntime` wheel (load-dynamic; nothing is downloaded).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, ScorerError};

static RUNTIME: OnceLock<std::result::Result<String, String>> = OnceLock::new();

/// Load libonnxruntime from `lib` once per process (later calls return the first outcome).
pub fn init_runtime(lib: &Path) -> Result<()> {
    let outcome = RUNTIME.get_or_init(|| {
        // A bad path can hang inside the loader: check it first.
        if !lib.is_file() {
            return Err(ScorerError::OrtLibMissing(lib.display().to_string()).to_string());
        }
        match ort::init_from(lib) {
            Ok(builder) => {
                builder.with_name("mps-scorer").commit();
                Ok(lib.display().to_string())
            }
            Err(e) => Err(format!("load {}: {e}", lib.display())),
        }
    });
    outcome.clone().map(|_| ()).map_err(ScorerError::Ort)
}

/// Where to run the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA EP; `required` makes a failure to register it an error instead of a CPU fallback.
    Cuda {
        required: bool,
    },
}

/// Session options, set explicitly (threads, device).
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    pub intra_threads: usize,
    pub device: Device,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { intra_threads: 1, device: Device::Cpu }
    }
}

/// What a model file says about itself (metadata_props, contracts/model.md).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub model_name: String,
    pub model_version: String,
    pub feature_set: String,
    pub feature_names: Vec<String>,
    pub lookback: usize,
    pub horizons: Vec<i64>,
    pub horizon_unit: String,
    pub tf: String,
    pub bucket_edges_bps: Vec<f64>,
    pub calibration_temperatures: Vec<f64>,
    pub conformal_alpha: f64,
    pub conformal_qhat_bps: Vec<f64>,
    pub golden_file: String,
    pub golden_sha256: String,
}

impl ModelMeta {
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }
    pub fn n_buckets(&self) -> usize {
        self.bucket_edges_bps.len() - 1
    }

    /// Parse metadata from a lookup function; a missing or malformed key names itself.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let req = |k: &str| get(k).ok_or_else(|| ScorerError::Contract(format!("metadata lacks {k:?}")));
        fn js<T: for<'de> Deserialize<'de>>(k: &str, v: String) -> Result<T> {
            serde_json::from_str(&v).map_err(|e| ScorerError::Contract(format!("metadata {k:?} is malformed: {e}")))
        }
        let meta = ModelMeta {
            model_name: req("model_name")?,
            model_version: req("model_version")?,
            feature_set: req("feature_set")?,
            feature_names: js("feature_names", req("feature_names")?)?,
            lookback: js("lookback", req("lookback")?)?,
            horizons: js("horizons", req("horizons")?)?,
            horizon_unit: req("horizon_unit")?,
            tf: req("tf")?,
            bucket_edges_bps: js("bucket_edges_bps", req("bucket_edges_bps")?)?,
            calibration_temperatures: js("calibration_temperatures", req("calibration_temperatures")?)?,
            conformal_alpha: js("conformal_alpha", req("conformal_alpha")?)?,
            conformal_qhat_bps: js("conformal_qhat_bps", req("conformal_qhat_bps")?)?,
            golden_file: req("golden_file")?,
            golden_sha256: req("golden_sha256")?,
        };
        meta.check()?;
        Ok(meta)
    }

    fn check(&self) -> Result<()> {
        let h = self.horizons.len();
        let bad = |m: &str| Err(ScorerError::Contract(format!("model {}: {m}", self.model_name)));
        if h == 0 || self.calibration_temperatures.len() != h || self.conformal_qhat_bps.len() != h {
            return bad("horizons, calibration_temperatures and conformal_qhat_bps need one entry per horizon");
        }
        if self.bucket_edges_bps.len() < 3
            || self.bucket_edges_bps.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
        {
            return bad("bucket_edges_bps must be >= 3 strictly increasing edges");
        }
        if self.lookback == 0 || self.feature_names.is_empty() {
            return bad("lookback must be >= 1 and feature_names non-empty");
        }
        Ok(())
    }

    /// Index of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Deserialize)]
struct GoldenFile {
    tolerance: f64,
    inputs: Vec<Vec<Vec<f32>>>,
    probs: Vec<Vec<Vec<f32>>>,
}

/// A loaded, verified model.
pub struct Model {
    session: Session,
    pub meta: ModelMeta,
    pub path: PathBuf,
    pub sha256: String,
    /// Execution provider actually in use ("cpu" or "cuda") and why, when it fell back.
    pub device: String,
    out: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("meta", &self.meta)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

fn build_session(bytes: &[u8], opts: &RuntimeOptions) -> Result<(Session, String)> {
    let base = || -> Result<ort::session::builder::SessionBuilder> {
        Ok(Session::builder()?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            .with_intra_threads(opts.intra_threads.max(1))?
            .with_inter_threads(1)?)
    };
    match opts.device {
        Device::Cpu => Ok((base()?.commit_from_memory(bytes)?, "cpu".into())),
        Device::Cuda { required } => match cuda_session(base()?, bytes) {
            Ok(s) => Ok((s, "cuda".into())),
            Err(e) if !required => {
                tracing::warn!(reason = %e, "CUDA execution provider unavailable; falling back to CPU");
                Ok((base()?.commit_from_memory(bytes)?, format!("cpu (cuda fallback: {e})")))
            }
            Err(e) => Err(e),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_session(builder: ort::session::builder::SessionBuilder, bytes: &[u8]) -> Result<Session> {
    let ep = ort::ep::CUDA::default().build().error_on_failure();
    Ok(builder.with_execution_providers([ep])?.commit_from_memory(bytes)?)
}

#[cfg(not(feature = "cuda"))]
fn cuda_session(_builder: ort::session::builder::SessionBuilder, _bytes: &[u8]) -> Result<Session> {
    Err(ScorerError::Ort("this build has no CUDA support (cargo feature `cuda` is off)".into()))
}

/// Largest model (and golden vectors) file read unless told otherwise.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 1 << 30;

/// Read a regular file of at most `max_bytes`: a FIFO, a device (/dev/zero) or a directory is
/// refused before it is opened, and a file growing past the bound while read is cut and refused.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| ScorerError::Io { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ScorerError::Contract(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > max_bytes {
        return Err(ScorerError::Contract(format!(
            "{} holds {} bytes, more than the {max_bytes} allowed",
            path.display(),
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path).map_err(io)?.take(max_bytes + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max_bytes {
        return Err(ScorerError::Contract(format!("{} grew past the {max_bytes} bytes allowed", path.display())));
    }
    Ok(buf)
}

impl Model {
    /// Load `path`, check its sha256 (when given), its metadata and its golden vectors.
    pub fn load(path: &Path, expected_sha256: Option<&str>, opts: &RuntimeOptions) -> Result<Model> {
        Self::load_bounded(path, expected_sha256, opts, DEFAULT_MAX_MODEL_BYTES)
    }

    /// [`Model::load`] reading at most `max_bytes` of the model and of its golden vectors.
    pub fn load_bounded(
        path: &Path,
        expected_sha256: Option<&str>,
        opts: &RuntimeOptions,
        max_bytes: u64,
    ) -> Result<Model> {
        let bytes = read_bounded(path, max_bytes)?;
        let sha = sha256_hex(&bytes);
        if let Some(expected) = expected_sha256 {
            if !expected.eq_ignore_ascii_case(&sha) {
                return Err(ScorerError::Checksum {
                    path: path.display().to_string(),
                    expected: expected.into(),
                    actual: sha,
                });
            }
        }
        let (session, device) = build_session(&bytes, opts)?;
        let meta = {
            let md = session.metadata()?;
            ModelMeta::from_lookup(|k| md.custom(k))?
        };
        let inputs = session.inputs();
        let outputs = session.outputs();
        if inputs.len() != 1 || inputs[0].name() != "features" || outputs.is_empty() || outputs[0].name() != "probs" {
            return Err(ScorerError::Contract(format!(
                "{}: expected one input `features` and output `probs`",
                path.display()
            )));
        }
        let mut model = Model { session, meta, path: path.to_path_buf(), sha256: sha, device, out: Vec::new() };
        model.check_golden(max_bytes)?;
        Ok(model)
    }

    fn check_golden(&mut self, max_bytes: u64) -> Result<()> {
        let golden_path = self.path.with_file_name(&self.meta.golden_file);
        let bytes = read_bounded(&golden_path, max_bytes)?;
        let sha = sha256_hex(&bytes);
        if sha != self.meta.golden_sha256 {
            return Err(ScorerError::Checksum {
                path: golden_path.display().to_string(),
                expected: self.meta.golden_sha256.clone(),
                actual: sha,
            });
        }
        let golden: GoldenFile = serde_json::from_slice(&bytes)
            .map_err(|source| ScorerError::Json { what: golden_path.display().to_string(), source })?;
        let (l, f, h, k) =
            (self.meta.lookback, self.meta.n_features(), self.meta.horizons.len(), self.meta.n_buckets());
        let b = golden.inputs.len();
        let mut x = Vec::with_capacity(b * l * f);
        for w in &golden.inputs {
            if w.len() != l || w.iter().any(|r| r.len() != f) {
                return Err(ScorerError::Contract(format!("golden inputs are not ({b}, {l}, {f})")));
            }
            w.iter().for_each(|r| x.extend_from_slice(r));
        }
        let tolerance = golden.tolerance;
        let got = self.predict(&x, b)?.to_vec();
        let mut max_diff = 0.0f64;
        let mut i = 0;
        for bh in golden.probs.iter().flatten() {
            if bh.len() != k {
                return Err(ScorerError::Contract("golden probs have the wrong K".into()));
            }
            for &e in bh {
                max_diff = max_diff.max((got[i] as f64 - e as f64).abs());
                i += 1;
            }
        }
        if i != b * h * k || max_diff.is_nan() || max_diff > tolerance {
            return Err(ScorerError::Golden {
                path: self.path.display().to_string(),
                max_diff: if i != b * h * k { f64::INFINITY } else { max_diff },
                tolerance,
            });
        }
        Ok(())
    }

    /// Run `x` (batch * L * F, row-major) and return probs (batch * H * K), checked in shape.
    pub fn predict(&mut self, x: &[f32], batch: usize) -> Result<&[f32]> {
        let (l, f) = (self.meta.lookback, self.meta.n_features());
        let (h, k) = (self.meta.horizons.len(), self.meta.n_buckets());
        if batch == 0 || x.len() < batch * l * f {
            return Err(ScorerError::Contract(format!("input holds {} values, need {}", x.len(), batch * l * f)));
        }
        let input = TensorRef::from_array_view(([batch, l, f], &x[..batch * l * f]))?;
        let outputs = self.session.run(ort::inputs![input])?;
        let (shape, data) = outputs[0].try_extract_tensor::<f32>()?;
        let dims: &[i64] = shape;
        if dims != [batch as i64, h as i64, k as i64] {
            return Err(ScorerError::Contract(format!("output shape {dims:?} != [{batch}, {h}, {k}]")));
        }
        self.out.clear();
        self.out.extend_from_slice(data);
        Ok(&self.out)
    }
}
