//! Champion pointers: parse, load (bounded, with a timeout, off the scoring thread), check against
//! the model's own metadata, persist the last good one, and watch the KV key for new ones.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::{Result, ScorerError};
use crate::metrics::Metrics;
use crate::model::{read_bounded, Model, RuntimeOptions};

/// The KV value at the champion key (contracts/champion_pointer.schema.json).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChampionPointer {
    pub model_name: String,
    pub model_version: String,
    pub onnx_uri: String,
    pub sha256: String,
    #[serde(default)]
    pub promoted_at: Option<i64>,
}

/// How candidate models are loaded.
#[derive(Debug, Clone)]
pub struct LoadPolicy {
    pub model_name: String,
    pub runtime: RuntimeOptions,
    /// Largest model (and golden vectors) file read.
    pub max_bytes: u64,
    /// A load that takes longer is abandoned (a path that never answers cannot block swaps).
    pub timeout: Duration,
    /// Where the last good champion is kept so a restart serves it at once.
    pub state_dir: Option<PathBuf>,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl ChampionPointer {
    /// Parse a KV value; the pointer must name an absolute local file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let p: ChampionPointer = serde_json::from_slice(bytes)
            .map_err(|source| ScorerError::Json { what: "champion pointer".into(), source })?;
        p.path()?;
        Ok(p)
    }

    /// The ONNX file: `file:///abs/path` (percent-decoded) or `/abs/path`; anything else is refused.
    pub fn path(&self) -> Result<PathBuf> {
        let uri = &self.onnx_uri;
        let raw = match uri.strip_prefix("file://") {
            Some(rest) => percent_decode(rest)
                .ok_or_else(|| ScorerError::Contract(format!("onnx_uri {uri:?}: bad percent-encoding")))?,
            None if uri.contains("://") => {
                return Err(ScorerError::Contract(format!("onnx_uri {uri:?}: only file:// URIs are served")))
            }
            None => uri.clone(),
        };
        let path = PathBuf::from(raw);
        if !path.is_absolute() {
            return Err(ScorerError::Contract(format!("onnx_uri {uri:?} must be absolute")));
        }
        Ok(path)
    }
}

/// Load the model a pointer names and check it is what the pointer says it is.
pub async fn load_pointer(pointer: &ChampionPointer, policy: &LoadPolicy) -> Result<Model> {
    if pointer.model_name != policy.model_name {
        return Err(ScorerError::Contract(format!(
            "pointer names model {:?}, this scorer serves {:?}",
            pointer.model_name, policy.model_name
        )));
    }
    let path = pointer.path()?;
    let (sha, opts, max) = (pointer.sha256.clone(), policy.runtime, policy.max_bytes);
    let task = tokio::task::spawn_blocking(move || Model::load_bounded(&path, Some(&sha), &opts, max));
    let model = match tokio::time::timeout(policy.timeout, task).await {
        Err(_) => {
            return Err(ScorerError::Contract(format!(
                "loading {} took longer than {:?}; abandoned",
                pointer.onnx_uri, policy.timeout
            )))
        }
        Ok(Err(e)) => return Err(ScorerError::Contract(format!("model loader task: {e}"))),
        Ok(Ok(loaded)) => loaded?,
    };
    if model.meta.model_name != pointer.model_name || model.meta.model_version != pointer.model_version {
        return Err(ScorerError::Contract(format!(
            "pointer says {} v{}, the model's metadata says {} v{}",
            pointer.model_name, pointer.model_version, model.meta.model_name, model.meta.model_version
        )));
    }
    Ok(model)
}

/// Load a model from a path given on the command line (bounded and timed like a pointer).
pub async fn load_path(path: &Path, policy: &LoadPolicy) -> Result<Model> {
    let (path, opts, max) = (path.to_path_buf(), policy.runtime, policy.max_bytes);
    match tokio::time::timeout(
        policy.timeout,
        tokio::task::spawn_blocking(move || Model::load_bounded(&path, None, &opts, max)),
    )
    .await
    {
        Err(_) => {
            Err(ScorerError::Contract(format!("loading the bootstrap model took longer than {:?}", policy.timeout)))
        }
        Ok(Err(e)) => Err(ScorerError::Contract(format!("model loader task: {e}"))),
        Ok(Ok(loaded)) => loaded,
    }
}

fn persisted_pointer_path(dir: &Path, model_name: &str) -> PathBuf {
    dir.join(format!("champion.{model_name}.json"))
}

/// The last good champion kept in `dir`, if any.
pub fn read_persisted(dir: &Path, model_name: &str) -> Option<ChampionPointer> {
    let bytes = read_bounded(&persisted_pointer_path(dir, model_name), 1 << 16).ok()?;
    ChampionPointer::parse(&bytes).ok()
}

/// Copy the serving model and its golden vectors into `dir` and point `champion.<name>.json` at the
/// copy (written to a temporary name, then renamed: a crash never leaves a half pointer).
pub fn persist(dir: &Path, model_path: &Path, golden_file: &str, pointer: &ChampionPointer) -> Result<()> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ScorerError::Io { path, source }
    };
    let target = dir.join("models").join(&pointer.model_name).join(&pointer.model_version);
    std::fs::create_dir_all(&target).map_err(io(&target))?;
    let file_name = model_path
        .file_name()
        .ok_or_else(|| ScorerError::Contract(format!("{} has no file name", model_path.display())))?;
    let model_copy = target.join(file_name);
    if model_copy != model_path {
        std::fs::copy(model_path, &model_copy).map_err(io(&model_copy))?;
        let golden = model_path.with_file_name(golden_file);
        std::fs::copy(&golden, target.join(golden_file)).map_err(io(&golden))?;
    }
    let kept = ChampionPointer { onnx_uri: model_copy.display().to_string(), ..pointer.clone() };
    let final_path = persisted_pointer_path(dir, &pointer.model_name);
    let tmp = final_path.with_extension("json.tmp");
    let text =
        serde_json::to_vec(&kept).map_err(|source| ScorerError::Json { what: "champion pointer".into(), source })?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &final_path).map_err(io(&final_path))?;
    Ok(())
}

/// Persist in the background (blocking I/O off the scoring thread); failures are logged.
pub fn persist_in_background(policy: &LoadPolicy, model: &Model) {
    let Some(dir) = policy.state_dir.clone() else { return };
    let pointer = ChampionPointer {
        model_name: model.meta.model_name.clone(),
        model_version: model.meta.model_version.clone(),
        onnx_uri: model.path.display().to_string(),
        sha256: model.sha256.clone(),
        promoted_at: None,
    };
    let (path, golden) = (model.path.clone(), model.meta.golden_file.clone());
    tokio::task::spawn_blocking(move || {
        if let Err(e) = persist(&dir, &path, &golden, &pointer) {
            tracing::warn!(error = %e, "could not persist the champion; a restart will wait for KV");
        }
    });
}

/// Watch a pointer key (`role`: "champion" or "challenger"): each new pointer is loaded and
/// verified off the scoring thread and sent as `Some(model)`; a delete or purge of a key that held a
/// model sends `None`. `serving_sha` is the model already served (its pointer is not reloaded).
pub async fn watch(
    store: kv::Store,
    key: String,
    role: &'static str,
    serving_sha: String,
    policy: LoadPolicy,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Option<Model>>,
) {
    let mut last_sha = serving_sha;
    let mut watch = match store.watch_with_history(&key).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, key, role, "cannot watch the pointer; swaps of this model disabled");
            return;
        }
    };
    while let Some(entry) = watch.next().await {
        let Ok(entry) = entry else { continue };
        if entry.operation != kv::Operation::Put {
            if !last_sha.is_empty() {
                last_sha.clear();
                if tx.send(None).await.is_err() {
                    return;
                }
            }
            continue;
        }
        let pointer = match ChampionPointer::parse(&entry.value) {
            Ok(p) => p,
            Err(e) => {
                metrics.model_rejects.fetch_add(1, Relaxed);
                tracing::error!(error = %e, key, role, "pointer refused; keeping the current model");
                continue;
            }
        };
        if pointer.sha256.eq_ignore_ascii_case(&last_sha) {
            continue;
        }
        match load_pointer(&pointer, &policy).await {
            Ok(model) => {
                last_sha = model.sha256.clone();
                if tx.send(Some(model)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                metrics.model_rejects.fetch_add(1, Relaxed);
                tracing::error!(error = %e, role, version = pointer.model_version, "model refused; keeping the current one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(uri: &str) -> ChampionPointer {
        ChampionPointer {
            model_name: "m".into(),
            model_version: "1".into(),
            onnx_uri: uri.into(),
            sha256: "0".repeat(64),
            promoted_at: None,
        }
    }

    #[test]
    fn pointer_uris_must_be_absolute_local_files() {
        assert_eq!(pointer("file:///a%20b/m.onnx").path().unwrap(), PathBuf::from("/a b/m.onnx"));
        assert_eq!(pointer("/a/m.onnx").path().unwrap(), PathBuf::from("/a/m.onnx"));
        assert!(pointer("m.onnx").path().is_err());
        assert!(pointer("file://m.onnx").path().is_err());
        assert!(pointer("s3://bucket/m.onnx").path().is_err());
        assert!(pointer("file:///a%zz").path().is_err());
        assert!(ChampionPointer::parse(b"{}").is_err());
    }

    #[test]
    fn bounded_reads_refuse_devices_and_big_files() {
        assert!(read_bounded(Path::new("/dev/zero"), 1024).is_err());
        assert!(read_bounded(Path::new("/"), 1024).is_err());
        let dir = std::env::temp_dir().join(format!("mps-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big");
        std::fs::write(&f, vec![0u8; 2048]).unwrap();
        assert!(read_bounded(&f, 1024).is_err());
        assert_eq!(read_bounded(&f, 4096).unwrap().len(), 2048);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
