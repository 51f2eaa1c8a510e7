//! Bounded streams: each stream is trimmed below what its readers have consumed.
//!
//! After `kill -9`, nats-server rebuilds every stream written since its last `index.db` snapshot
//! (taken every ~2 minutes) from all of its blocks, so its restart time grows with the streams'
//! size (3M messages: 9-90 s on two cores). A stream that holds only what is not yet consumed
//! restarts in well under a second. The rule, the same as `feature_store/retention.py`:
//! - the floor is the lowest `ack_floor` of the stream's durable consumers (a reader that needs
//!   what it has not read yet holds a durable), and, for MARKET_DATA, the lowest position of any
//!   featurizer checkpoint (`checkpoint_floors`); ephemeral consumers do not count: a killed
//!   process's ordered consumer outlives it by its inactivity threshold (30 s) and would hold
//!   the stream back meanwhile, and the featurizer's own is covered by its checkpoint;
//! - a stream with no durable and no checkpoint is left whole (nobody has read it yet);
//! - the purge keeps every sequence above the floor.
//!
//! JetStream's Interest retention would trim too, but it drops every message published while a
//! stream has no consumer, which a replay into a fresh lake (or a scorer started after its
//! featurizer) does on purpose.

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;

use crate::error::{Result, ScorerError};
use crate::streaming::STREAMING;

fn nats(what: &str, e: impl std::fmt::Display) -> ScorerError {
    ScorerError::Nats(format!("{what}: {e}"))
}

/// The positions (MARKET_DATA stream sequences) of every featurizer checkpoint (none when the
/// bucket does not exist); `None` when one has no readable position (trimming then waits: that
/// featurizer's replay start is unknown). A bucket that cannot be read is an error, never "none".
pub async fn checkpoint_floors(js: &jetstream::Context) -> Result<Option<Vec<u64>>> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    use async_nats::jetstream::ErrorCode;

    let bucket = &STREAMING.featurizer_state.bucket;
    match js.get_stream(format!("OBJ_{bucket}")).await {
        Ok(_) => {}
        Err(e) => {
            return match e.kind() {
                GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                    Ok(Some(Vec::new()))
                }
                _ => Err(nats("checkpoint bucket", e)),
            }
        }
    }
    let store = js.get_object_store(bucket).await.map_err(|e| nats("checkpoint bucket", e))?;
    let mut list = store.list().await.map_err(|e| nats("list checkpoints", e))?;
    let mut floors = Vec::new();
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| nats("list checkpoints", e))?;
        if info.deleted {
            continue;
        }
        let position = info
            .headers
            .as_ref()
            .and_then(|h| h.get(STREAMING.featurizer_state.position_header.as_str()))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        match position {
            Some(p) => floors.push(p),
            None => {
                tracing::warn!(
                    object = info.name,
                    "featurizer checkpoint has no position header; MARKET_DATA is not trimmed"
                );
                return Ok(None);
            }
        }
    }
    Ok(Some(floors))
}

/// Purge `name` below the lowest sequence any durable consumer (or `extra` position) still needs;
/// returns the messages removed (0 when no durable reads the stream or nothing is below the floor).
pub async fn trim_consumed(js: &jetstream::Context, name: &str, extra: &[u64]) -> Result<u64> {
    let mut st: stream::Stream = js.get_stream(name).await.map_err(|e| nats("get stream", format!("{name}: {e}")))?;
    let mut floor = extra.iter().copied().min();
    let mut consumers = st.consumers();
    while let Some(info) = consumers.next().await {
        let info = info.map_err(|e| nats("list consumers", format!("{name}: {e}")))?;
        if info.config.durable_name.is_none() {
            continue;
        }
        let acked = info.ack_floor.stream_sequence;
        floor = Some(floor.map_or(acked, |f| f.min(acked)));
    }
    let Some(floor) = floor else { return Ok(0) };
    let first = st.info().await.map_err(|e| nats("stream info", format!("{name}: {e}")))?.state.first_sequence;
    if floor < first {
        return Ok(0);
    }
    let purged = st.purge().sequence(floor + 1).await.map_err(|e| nats("purge", format!("{name}: {e}")))?;
    Ok(purged.purged)
}

/// Trim `name` every `every` until the task is dropped; failures (NATS down) are logged and retried.
pub async fn trim_every(js: jetstream::Context, name: String, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match trim_consumed(&js, &name, &[]).await {
            Ok(n) if n > 0 => tracing::debug!(stream = name, purged = n, "trimmed consumed messages"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "trim skipped"),
        }
    }
}
