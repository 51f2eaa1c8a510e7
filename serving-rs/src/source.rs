//! Where FeatureUpdates come from: a JetStream durable pull consumer that survives NATS restarts,
//! or a plain core subscription.
//!
//! A NATS restart drops the pull request the consumer stream had outstanding. async-nats re-pulls
//! when it sees the reconnect, but it can miss a quick disconnect/connect pair, and then nothing
//! arrives until that request's expiry (30 s by default): the soak saw 16-25 s stalls after the
//! second NATS kill. So the stream asks the server for an idle heartbeat every [`HEARTBEAT`] and
//! is rebuilt (a fresh pull request) when two are missed or it reports any error: consumption
//! resumes about a second after NATS is back.
//!
//! JetStream writes a consumer's ack state to disk asynchronously, so after `kill -9` of the
//! server it redelivers messages that were already acked, with a delivery count of 1. A message is
//! therefore taken as a redelivery when its delivery count is above 1 or its stream sequence is
//! not above the highest this process has seen; a genuine second publish of an update has a new,
//! higher stream sequence and is still refused as a duplicate.
//!
//! A scorer killed with a batch in flight leaves those updates delivered but unacked; JetStream
//! redelivers them only after the ack wait, when the next process has scored later updates of
//! the same symbols, and with the consumer's ack-all policy an ack of a later update even covers
//! them: the soak lost one update per symbol per scorer kill. So a starting scorer first re-reads,
//! by stream sequence, every update between the consumer's ack floor and its last delivery and
//! scores them in order before anything new.
//!
//! Dropping a pull stream drops the messages it had buffered, which the server counts as
//! delivered: under load the missed-heartbeat error can fire with a batch already in the buffer
//! (CI lost a whole wave after a NATS restart). With the ack-all policy the ack of the next update
//! then covers them, so they were lost for good. So after every rebuild the source asks the server
//! what it delivered, and re-reads by stream sequence every update above the highest it has seen
//! before pulling again: the same catch-up as at start.
//!
//! Reconnecting: async-nats' default delay before the n-th reconnect attempt is 2^(n-1) ms (up to
//! 4 s), so after an outage of a second or two the next attempt can come a second after the server
//! listens again: the soak's NATS kills resumed 0.16-1.0 s after the server was back. Connect with
//! [`reconnect_delay`] (`ConnectOptions::reconnect_delay_callback`): attempts [`RECONNECT_STEP`]
//! apart, growing to at most [`RECONNECT_MAX`], so the scorer is back within 0.2 s of the server.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::{FutureExt, StreamExt};

use crate::error::{Result, ScorerError};

/// Idle heartbeat asked of the server while a pull request waits; two missed ones rebuild the stream.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long one pull request lives on the server (must exceed two heartbeats).
pub const EXPIRES: Duration = Duration::from_secs(5);
/// Messages asked for per pull request.
pub const BATCH: usize = 1000;
/// Pause before rebuilding a stream that failed, so an outage does not spin.
const REBUILD_PAUSE: Duration = Duration::from_millis(100);
/// Growth of the wait between reconnect attempts (first attempt at once).
pub const RECONNECT_STEP: Duration = Duration::from_millis(50);
/// Longest wait between reconnect attempts: a refused connect to a local server costs microseconds.
pub const RECONNECT_MAX: Duration = Duration::from_millis(200);

/// Delay before reconnect attempt `attempts` (1-based): 0, 50, 100, 150, 200, 200, ... ms.
pub fn reconnect_delay(attempts: usize) -> Duration {
    let steps = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    RECONNECT_STEP.saturating_mul(steps).min(RECONNECT_MAX)
}

/// One input message: the core message, its JetStream handle (for the ack) and whether it is a redelivery.
pub struct Incoming {
    pub msg: async_nats::Message,
    pub js: Option<jetstream::Message>,
    redelivered: bool,
}

impl Incoming {
    /// Whether JetStream delivered this message before (its first delivery may have been scored).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }
}

/// The JetStream side: the durable consumer, its current message stream, the highest sequence seen.
pub struct JsSource {
    consumer: consumer::PullConsumer,
    /// The stream the consumer reads, for re-reading updates by sequence.
    store: jetstream::stream::Stream,
    stream: Option<Box<consumer::pull::Stream>>,
    /// Set when a pull stream was dropped: re-read what the server delivered into it before pulling again.
    resync: bool,
    highest: u64,
    rebuilds: u64,
    /// Updates delivered to the previous process but never acked, re-read from the stream.
    catch_up: VecDeque<Incoming>,
}

pub enum Source {
    Core(async_nats::Subscriber),
    Js(Box<JsSource>),
}

async fn open(consumer: &consumer::PullConsumer) -> std::result::Result<consumer::pull::Stream, String> {
    consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .expires(EXPIRES)
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(|e| e.to_string())
}

/// Updates `first..=last` read from `store` by sequence (no JetStream handle: a later ack covers them).
async fn read_range(store: &jetstream::stream::Stream, first: u64, last: u64) -> VecDeque<Incoming> {
    let mut out = VecDeque::new();
    for seq in first..=last {
        match store.get_raw_message(seq).await {
            Ok(m) => out.push_back(Incoming {
                msg: async_nats::Message {
                    subject: m.subject,
                    reply: None,
                    payload: m.payload,
                    headers: Some(m.headers),
                    status: None,
                    description: None,
                    length: 0,
                },
                js: None,
                redelivered: false,
            }),
            Err(e) => tracing::debug!(seq, error = %e, "delivered update not readable; skipped"),
        }
    }
    out
}

impl JsSource {
    /// Queue the updates the server delivered above the highest this process has seen (lost with
    /// a dropped pull stream). Fails only when the server cannot be asked; the caller retries.
    async fn resync(&mut self) -> std::result::Result<(), String> {
        let delivered = self.consumer.info().await.map_err(|e| e.to_string())?.delivered.stream_sequence;
        if delivered > self.highest {
            let lost = read_range(&self.store, self.highest + 1, delivered).await;
            tracing::warn!(
                n = lost.len(),
                from = self.highest + 1,
                to = delivered,
                "re-reading updates a dropped pull stream held"
            );
            self.catch_up.extend(lost);
            self.highest = delivered;
        }
        self.resync = false;
        Ok(())
    }

    fn incoming(&mut self, m: jetstream::Message) -> Incoming {
        let (delivered, seq) = m.info().map(|i| (i.delivered, i.stream_sequence)).unwrap_or((1, u64::MAX));
        let redelivered = delivered > 1 || seq <= self.highest;
        if seq != u64::MAX {
            self.highest = self.highest.max(seq);
        }
        Incoming { msg: m.message.clone(), js: Some(m), redelivered }
    }

    fn drop_stream(&mut self, why: &str) {
        self.stream = None;
        self.resync = true;
        self.rebuilds += 1;
        tracing::warn!(why, rebuilds = self.rebuilds, "jetstream consumer stream lost; pulling again");
    }
}

impl Source {
    /// A durable pull consumer's messages, after the ones a previous process left unacked (read
    /// from `stream` by sequence). The first pull must succeed: NATS is up at start.
    pub async fn jetstream(consumer: consumer::PullConsumer, stream: &jetstream::stream::Stream) -> Result<Source> {
        let info = consumer.cached_info();
        let (floor, delivered) = (info.ack_floor.stream_sequence, info.delivered.stream_sequence);
        let catch_up = read_range(stream, floor.saturating_add(1), delivered).await;
        if !catch_up.is_empty() {
            tracing::info!(n = catch_up.len(), floor, delivered, "scoring updates a previous process left unacked");
        }
        let messages = open(&consumer).await.map_err(|e| ScorerError::Nats(format!("consume: {e}")))?;
        let store = stream.clone();
        let stream = Some(Box::new(messages));
        let js = JsSource { consumer, store, stream, resync: false, highest: delivered, rebuilds: 0, catch_up };
        Ok(Source::Js(Box::new(js)))
    }

    /// The next input; for JetStream, waits through NATS outages (None only when a core subscription ends).
    pub async fn next(&mut self) -> Option<Incoming> {
        let js = match self {
            Source::Core(sub) => return sub.next().await.map(|msg| Incoming { msg, js: None, redelivered: false }),
            Source::Js(js) => js,
        };
        if let Some(inc) = js.catch_up.pop_front() {
            return Some(inc);
        }
        loop {
            let Some(stream) = js.stream.as_mut() else {
                if js.resync {
                    if let Err(e) = js.resync().await {
                        tracing::debug!(error = %e, "consumer info not available yet");
                        tokio::time::sleep(REBUILD_PAUSE).await;
                    }
                    continue;
                }
                if let Some(inc) = js.catch_up.pop_front() {
                    return Some(inc);
                }
                match open(&js.consumer).await {
                    Ok(s) => js.stream = Some(Box::new(s)),
                    Err(e) => {
                        tracing::debug!(error = %e, "pull not possible yet");
                        tokio::time::sleep(REBUILD_PAUSE).await;
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(m)) => return Some(js.incoming(m)),
                Some(Err(e)) => {
                    js.drop_stream(&e.to_string());
                    tokio::time::sleep(REBUILD_PAUSE).await;
                }
                None => js.drop_stream("stream ended"),
            }
        }
    }

    /// An input that is ready now, without waiting (None if none is, or the stream is being rebuilt).
    pub fn try_next(&mut self) -> Option<Incoming> {
        match self {
            Source::Core(sub) => {
                sub.next().now_or_never().flatten().map(|msg| Incoming { msg, js: None, redelivered: false })
            }
            Source::Js(js) if !js.catch_up.is_empty() => js.catch_up.pop_front(),
            Source::Js(js) => match js.stream.as_mut()?.next().now_or_never()? {
                Some(Ok(m)) => Some(js.incoming(m)),
                Some(Err(e)) => {
                    js.drop_stream(&e.to_string());
                    None
                }
                None => {
                    js.drop_stream("stream ended");
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_is_bounded() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), RECONNECT_STEP);
        assert_eq!(reconnect_delay(4), 3 * RECONNECT_STEP);
        assert_eq!(reconnect_delay(5), RECONNECT_MAX);
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_MAX);
    }
}
