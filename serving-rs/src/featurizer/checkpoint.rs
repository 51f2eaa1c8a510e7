//! Restart checkpoints: the featurizer's state after a known MARKET_DATA message, in NATS.
//!
//! One object per engine, feature set and timeframe in the contract's `featurizer_state` object
//! store (`featurizer.rust.tick_v2.1s`), CBOR (exact `f64`, NaN included), with the MARKET_DATA
//! stream sequence it includes in the `Mps-Md-Seq` header, so a trimmer reads every position from
//! the bucket's listing without fetching a state. A restart restores the state and replays
//! MARKET_DATA from the next sequence; MARKET_DATA is trimmed below the lowest position.
//!
//! An object is written as chunks, then its metadata; a put cut short (NATS killed, an ack
//! timeout) leaves its chunks behind with no metadata naming them, which nothing else removes
//! and which a NATS restart reads back: `purge_orphans` removes them once they are old enough
//! that no put can still be writing them.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, object_store};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::feature_set::FeatureSet;
use super::state::Snapshot;
use crate::error::{Result, ScorerError};
use crate::streaming::STREAMING;

/// Bumped when [`Checkpoint`] or [`Snapshot`] changes shape: an older object is then ignored.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub feature_set: String,
    pub version: String,
    pub tf: String,
    /// The MARKET_DATA stream sequence of the last message `state` includes.
    pub md_seq: u64,
    pub state: Snapshot,
}

impl Checkpoint {
    /// Whether this checkpoint was written by this engine for feature set `fs` (same version).
    pub fn fits(&self, fs: &FeatureSet) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format {} (this build writes {FORMAT})", self.format));
        }
        if (self.feature_set.as_str(), self.version.as_str(), self.tf.as_str())
            != (fs.name.as_str(), fs.version.as_str(), fs.tf.as_str())
        {
            return Err(format!(
                "{} {} {} (running {} {} {})",
                self.feature_set, self.version, self.tf, fs.name, fs.version, fs.tf
            ));
        }
        Ok(())
    }
}

pub fn encode(c: &Checkpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    ciborium::into_writer(c, &mut out).expect("a checkpoint always serialises into memory");
    out
}

pub fn decode(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}

/// This featurizer's object name.
pub fn object_name(fs: &FeatureSet) -> String {
    STREAMING.featurizer_state_key("rust", &fs.name, &fs.tf)
}

/// The contract's object store of checkpoints, created when missing.
pub async fn store(js: &jetstream::Context) -> Result<object_store::ObjectStore> {
    let bucket = &STREAMING.featurizer_state.bucket;
    if let Ok(s) = js.get_object_store(bucket).await {
        return Ok(s);
    }
    js.create_object_store(object_store::Config { bucket: bucket.clone(), ..Default::default() })
        .await
        .map_err(|e| ScorerError::Nats(format!("create object store {bucket}: {e}")))
}

/// The stored checkpoint `name`, if any; an unreadable one is logged and ignored (a first start).
pub async fn load(store: &object_store::ObjectStore, name: &str) -> Option<Checkpoint> {
    let mut object = store.get(name).await.ok()?;
    let mut bytes = Vec::new();
    if let Err(e) = object.read_to_end(&mut bytes).await {
        tracing::warn!(name, error = %e, "checkpoint not readable; starting without it");
        return None;
    }
    match decode(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(name, error = e, "checkpoint not decodable; starting without it");
            None
        }
    }
}

/// Store `c` as `name` (replacing the previous one), its position in the header. Encoding a few
/// MB runs on the blocking pool, so the caller's thread goes on featurizing meanwhile.
pub async fn save(store: &object_store::ObjectStore, name: &str, c: Checkpoint) -> Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(STREAMING.featurizer_state.position_header.as_str(), c.md_seq.to_string().as_str());
    let meta = object_store::ObjectMetadata { name: name.to_owned(), headers: Some(headers), ..Default::default() };
    let bytes = tokio::task::spawn_blocking(move || encode(&c))
        .await
        .map_err(|e| ScorerError::Nats(format!("encode checkpoint {name}: {e}")))?;
    store
        .put(meta, &mut bytes.as_slice())
        .await
        .map(|_| ())
        .map_err(|e| ScorerError::Nats(format!("put checkpoint {name}: {e}")))
}

/// Purge the chunks of puts that never completed (no object's metadata names them) whose last
/// chunk is older than `min_age`; returns how many such puts were removed. A put in progress is
/// younger than its context's timeout, so a `min_age` above that never touches one.
pub async fn purge_orphans(js: &jetstream::Context, min_age: Duration) -> Result<usize> {
    let nats = |what: &str, e: String| ScorerError::Nats(format!("{what}: {e}"));
    let bucket = &STREAMING.featurizer_state.bucket;
    let store = js.get_object_store(bucket).await.map_err(|e| nats("object store", e.to_string()))?;
    let mut live = HashSet::new();
    let mut list = store.list().await.map_err(|e| nats("list checkpoints", e.to_string()))?;
    while let Some(info) = list.next().await {
        live.insert(info.map_err(|e| nats("list checkpoints", e.to_string()))?.nuid);
    }
    let stream = js.get_stream(format!("OBJ_{bucket}")).await.map_err(|e| nats("object stream", e.to_string()))?;
    let prefix = format!("$O.{bucket}.C.");
    let mut chunks =
        stream.info_with_subjects(format!("{prefix}>")).await.map_err(|e| nats("chunk subjects", e.to_string()))?;
    let mut orphans = Vec::new();
    while let Some(item) = chunks.next().await {
        let (subject, _) = item.map_err(|e| nats("chunk subjects", e.to_string()))?;
        if !subject.strip_prefix(prefix.as_str()).is_some_and(|nuid| live.contains(nuid)) {
            orphans.push(subject);
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    let mut purged = 0;
    for subject in orphans {
        let Ok(last) = stream.get_last_raw_message_by_subject(&subject).await else { continue };
        if now - last.time.unix_timestamp_nanos() >= min_age.as_nanos() as i128 {
            stream.purge().filter(&subject).await.map_err(|e| nats("purge orphan chunks", e.to_string()))?;
            purged += 1;
        }
    }
    Ok(purged)
}
