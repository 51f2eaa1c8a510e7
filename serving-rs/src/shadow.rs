//! Shadow scoring (seed section 16, issue 10): the challenger scored beside the champion.
//!
//! The challenger pointer lives at KV key `challenger_key` (contracts/streaming.json; same value
//! schema as the champion pointer). While it is set, the scoring loop feeds every accepted update
//! to a second [`Scorer`] holding the challenger, which starts on a copy of the champion's rings
//! (warm at once), and publishes its Signals, sized like the champion's, on `signals_shadow`
//! only: never on `signals`, which the sink stores as the live, tradable stream. Shadow publishes
//! are plain NATS publishes (stream SIGNALS_SHADOW captures them) that input acks never wait for,
//! so a shadow fault cannot stall or change the live path. Deleting the key stops the shadow.

use std::sync::atomic::Ordering::Relaxed;

use async_nats::HeaderMap;

use crate::config::SizingConfig;
use crate::engine::{Limits, Scorer};
use crate::error::{Result, ScorerError};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::outbox::MSG_ID;
use crate::streaming::STREAMING;

/// Build the shadow scorer for `challenger` beside `champion`: same feature set, names and tf,
/// a sizing that binds, and a different model file; it adopts the champion's rings and risk state.
pub fn start(
    champion: &Scorer,
    challenger: Model,
    sizing: &SizingConfig,
    max_batch: usize,
    limits: Limits,
) -> Result<Scorer> {
    champion.check_compatible(&challenger)?;
    let (serving, meta) = (champion.model(), &challenger.meta);
    if meta.tf != serving.meta.tf {
        return Err(ScorerError::Contract(format!(
            "challenger {} v{} scores tf {}, the champion {}",
            meta.model_name, meta.model_version, meta.tf, serving.meta.tf
        )));
    }
    if challenger.sha256.eq_ignore_ascii_case(&serving.sha256) {
        return Err(ScorerError::Contract(format!(
            "challenger {} v{} is the serving champion's file; nothing to shadow",
            meta.model_name, meta.model_version
        )));
    }
    let mut shadow = Scorer::new(challenger, sizing.clone(), max_batch)?.with_limits(limits);
    shadow.adopt_series(champion);
    shadow.set_risk(champion.risk());
    Ok(shadow)
}

/// Score the shadow's open batch and publish one Signal per update on `signals_shadow`.
pub async fn publish(client: &async_nats::Client, shadow: &mut Scorer, metrics: &Metrics, buf: &mut Vec<u8>) {
    let now = now_ns();
    let scored = match shadow.flush(now) {
        Ok(s) => s,
        Err(e) => {
            metrics.model_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "challenger model call failed; shadow batch dropped");
            return;
        }
    };
    for mut s in scored {
        s.signal.published_at = now_ns();
        buf.clear();
        if serde_json::to_writer(&mut *buf, &s.signal).is_err() {
            metrics.publish_errors.fetch_add(1, Relaxed);
            continue;
        }
        let sig = &s.signal;
        let subject = STREAMING.template("signals_shadow").render(&[("tf", &sig.tf), ("symbol", &sig.symbol_id)]);
        let id = format!("{}:{}:{}:{}:{}:{}", sig.model, sig.model_version, sig.tf, sig.symbol_id, sig.ts, sig.seq);
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, id.as_str());
        match client.publish_with_headers(subject, headers, bytes::Bytes::copy_from_slice(buf)).await {
            Ok(()) => {
                metrics.shadow_signals.fetch_add(1, Relaxed);
            }
            Err(e) => {
                metrics.publish_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "shadow publish failed");
            }
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
