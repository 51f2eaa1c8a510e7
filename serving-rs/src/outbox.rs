//! What the scorer publishes: Signals, re-sent Signals and dead letters, delivered at least once.
//!
//! In JetStream mode every message is published through JetStream and its ack awaited; a message
//! whose publish or ack fails is published again (with backoff) until JetStream acks it or the
//! scorer is told to stop. Only then does the loop ack the inputs (DESIGN section 6). Each Signal
//! carries `Nats-Msg-Id` = its key, so JetStream drops a re-publish inside its duplicate window and
//! the sink's keyed write drops the rest. In core mode messages are published once, unacked.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::future::join_all;

use crate::engine::{Scorer, Sent};
use crate::metrics::Metrics;
use crate::streaming::STREAMING;

/// The header JetStream dedupes on.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// How long to wait for JetStream's publish acks before publishing again. The acks of a batch are
/// awaited together, so a NATS restart costs at most this once (one after another, the lost acks
/// of five in-flight Signals held the scorer 25 s in the soak at async-nats' 5 s default).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(1);

struct Out {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    /// For a fresh Signal: its slot and what to keep for a re-send; its receive time.
    keep: Option<(usize, i64, i64, Instant)>,
}

/// Messages waiting to be published, and the connection to publish them on.
pub struct Outbox {
    client: async_nats::Client,
    js: Option<jetstream::Context>,
    metrics: Arc<Metrics>,
    buf: Vec<u8>,
    pending: Vec<Out>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Outbox {
    /// `js`: publish through JetStream and wait for acks (None: core publishes).
    pub fn new(client: async_nats::Client, js: Option<jetstream::Context>, metrics: Arc<Metrics>) -> Self {
        let js = js.map(|mut js| {
            js.set_timeout(ACK_TIMEOUT);
            js
        });
        Outbox { client, js, metrics, buf: Vec::with_capacity(4096), pending: Vec::new() }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Score the open batch and queue one Signal per update.
    pub fn queue_signals(&mut self, scorer: &mut Scorer) {
        let scored = match scorer.flush(now_ns()) {
            Ok(s) => s,
            Err(e) => {
                self.metrics.model_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "model call failed; batch dropped");
                return;
            }
        };
        self.metrics.batches.fetch_add(1, Relaxed);
        for mut s in scored {
            s.signal.published_at = now_ns();
            self.buf.clear();
            if serde_json::to_writer(&mut self.buf, &s.signal).is_err() {
                self.metrics.publish_errors.fetch_add(1, Relaxed);
                continue;
            }
            let sig = &s.signal;
            let subject = STREAMING.template("signals").render(&[("tf", &sig.tf), ("symbol", &sig.symbol_id)]);
            let id = format!("{}:{}:{}:{}:{}:{}", sig.model, sig.model_version, sig.tf, sig.symbol_id, sig.ts, sig.seq);
            let mut headers = HeaderMap::new();
            headers.insert(MSG_ID, id.as_str());
            self.pending.push(Out {
                subject,
                headers,
                payload: Bytes::copy_from_slice(&self.buf),
                keep: Some((s.slot, sig.seq, sig.ts, s.received)),
            });
        }
    }

    /// (subject, seq, headers) of each fresh Signal queued: where a traced update's context goes.
    pub fn signal_headers(&mut self) -> impl Iterator<Item = (&str, i64, &mut HeaderMap)> {
        self.pending.iter_mut().filter_map(|o| o.keep.map(|(_, seq, _, _)| (o.subject.as_str(), seq, &mut o.headers)))
    }

    /// Queue the Signal already published for a redelivered update.
    pub fn queue_resend(&mut self, sent: &Sent) {
        let (_, _, subject, id, payload) = sent;
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, id.as_str());
        self.pending.push(Out { subject: subject.clone(), headers, payload: payload.clone(), keep: None });
    }

    /// Queue a refused input for `deadletter.<its subject>` with its reason.
    pub fn queue_dead_letter(&mut self, msg: &async_nats::Message, reason: &str) {
        let mut headers = HeaderMap::new();
        headers.insert("Mps-Reason", reason);
        headers.insert("Mps-Subject", msg.subject.as_str());
        let subject = STREAMING.template("deadletter").render(&[("subject", msg.subject.as_str())]);
        self.pending.push(Out { subject, headers, payload: msg.payload.clone(), keep: None });
    }

    fn delivered(&self, out: Out, scorer: &mut Scorer) {
        if let Some((slot, seq, ts, received)) = out.keep {
            self.metrics.signals.fetch_add(1, Relaxed);
            self.metrics.observe_latency_ns(received.elapsed().as_nanos() as u64);
            let id = out.headers.get(MSG_ID).map(|v| v.as_str().to_owned()).unwrap_or_default();
            scorer.remember(slot, (seq, ts, out.subject, id, out.payload));
        }
    }

    /// Publish everything queued. JetStream: until every message is acked (true), or `stop`
    /// resolves first (false: the queue is kept, the inputs must not be acked).
    pub async fn deliver<F: Future<Output = ()>>(&mut self, scorer: &mut Scorer, stop: &mut Pin<&mut F>) -> bool {
        let Some(js) = self.js.clone() else {
            for out in std::mem::take(&mut self.pending) {
                match self
                    .client
                    .publish_with_headers(out.subject.clone(), out.headers.clone(), out.payload.clone())
                    .await
                {
                    Ok(()) => self.delivered(out, scorer),
                    Err(e) => {
                        self.metrics.publish_errors.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, "publish failed");
                    }
                }
            }
            return true;
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut waiting = Vec::with_capacity(self.pending.len());
            let mut failed = Vec::new();
            for out in std::mem::take(&mut self.pending) {
                match js.publish_with_headers(out.subject.clone(), out.headers.clone(), out.payload.clone()).await {
                    Ok(ack) => waiting.push((out, ack)),
                    Err(e) => {
                        tracing::debug!(error = %e, "jetstream publish failed; will retry");
                        failed.push(out);
                    }
                }
            }
            let acks = join_all(waiting.into_iter().map(|(out, ack)| async move { (out, ack.await) })).await;
            for (out, ack) in acks {
                match ack {
                    Ok(_) => self.delivered(out, scorer),
                    Err(e) => {
                        tracing::debug!(error = %e, "jetstream ack failed; will retry");
                        failed.push(out);
                    }
                }
            }
            if failed.is_empty() {
                return true;
            }
            self.metrics.publish_retries.fetch_add(failed.len() as u64, Relaxed);
            tracing::warn!(n = failed.len(), "publishes not acked by JetStream; retrying");
            self.pending = failed;
            tokio::select! {
                _ = stop.as_mut() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
