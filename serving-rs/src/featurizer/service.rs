//! The featurizer over NATS: MARKET_DATA in, FeatureUpdates on `features.v1.<tf>.<symbol>` out.
//!
//! The same service as `feature_store/streaming/service.py`, on one thread:
//! - input: an ordered pull consumer on MARKET_DATA (`md.trades.>`, `md.quotes.>`, one consumer so
//!   trades and quotes keep their relative order), or a core subscription (live only);
//! - recovery is a checkpoint and a short replay: every `checkpoint_every` (and at a stop) the
//!   state is stored in NATS with the MARKET_DATA sequence it includes (checkpoint.rs), once every
//!   update it produced is published; a restart restores it and replays MARKET_DATA from the next
//!   sequence, and MARKET_DATA is trimmed below the lowest checkpoint (retention.rs), so the stream
//!   stays small and so does a NATS restart. Every update carries a `Nats-Msg-Id`
//!   (`<feature set>.<symbol>.<seq>`), so a row published again after a restart is dropped by
//!   JetStream's duplicate window. With no checkpoint (a first start) the last FeatureUpdate stored
//!   per symbol on FEATURES is read, MARKET_DATA is replayed from the open of the earliest session
//!   those belong to, and only seconds after each symbol's last stored one are published;
//! - seconds close on event time; a heartbeat (`heartbeat_lateness`) closes them on the wall clock
//!   for quiet symbols; when the input pauses for a poll, every due second is published;
//! - an idle exit (`idle_exit`) closes the last second (the input is over); a stop (SIGTERM) leaves
//!   it open for the next run to replay, as a crash would;
//! - a NATS restart costs nothing: the client reconnects forever 0.1 s apart, the ordered consumer
//!   asks for idle heartbeats every 0.25 s (two missed recreate it after the last stream sequence it
//!   received), and with `publish_jetstream` updates are pipelined and their acks collected in send
//!   order; a publish that fails is sent again with every later one, in order and with the same
//!   `Nats-Msg-Id` (as Python's `Outbox`), so FEATURES holds each row once and in order. Core
//!   publishing (the default) is faster but loses what was in flight when the server died.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, context::PublishAckFuture, stream};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;

use super::checkpoint::{self, Checkpoint};
use super::feature_set::FeatureSet;
use super::plan::{Plan, NS_PER_S};
use super::state::{Counts, SessionBook, TickFeaturizer};
use super::wire::{encode_update, Event, Subjects};
use crate::error::{Result, ScorerError};
use crate::streaming::STREAMING;

/// An idle exit waits at least this long for the first message (a replay starting up).
pub const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(10);
/// `publish_jetstream`: unacked updates before the featurizer waits for acks (down to half).
const MAX_IN_FLIGHT: usize = 2000;
/// How long a JetStream publish waits for its ack before it is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a checkpoint's chunk waits for its ack: a 3 MB object on a loaded machine took more
/// than `ACK_TIMEOUT`, and every put cut short left its chunks behind.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before re-sending failed publishes (NATS down or JetStream not ready yet).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The ordered consumer's pull expiry; its idle heartbeat is half of it. Two missed heartbeats
/// recreate the consumer, so after a NATS restart input resumes within ~0.5 s of the server (at 1 s
/// the soak's NATS recoveries sat at 2.0-2.3 s; the Python featurizer uses the same 0.25 s).
const PULL_EXPIRES: Duration = Duration::from_millis(500);

/// How the service reads MARKET_DATA and publishes FEATURES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// Ordered consumer on the MARKET_DATA stream: replayable, recovers after a crash.
    JetStream,
    /// Core subscription on the live subjects: no replay, no recovery.
    Core,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    pub consume: Consume,
    /// Wait for FEATURES' ack of every update (slower); default: core publish into the stream.
    pub publish_jetstream: bool,
    /// Stop (closing the last second) after this long without input.
    pub idle_exit: Option<Duration>,
    /// Live: close seconds on the wall clock this long after they end.
    pub heartbeat_lateness: Option<Duration>,
    pub poll: Duration,
    /// Keep every event's processing time (wall and thread CPU) for the benchmark.
    pub record_latencies: bool,
    /// JetStream input: store a restart checkpoint this often (and at a stop); `None`: never
    /// (a restart then replays from the session open, and MARKET_DATA is not trimmed).
    pub checkpoint_every: Option<Duration>,
    /// How often the chunks of checkpoints cut short are looked for, and how old they must be to
    /// go (well above `CHECKPOINT_TIMEOUT`, so no put in progress is touched).
    pub orphan_sweep: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nats_url: "nats://127.0.0.1:4222".into(),
            consume: Consume::JetStream,
            publish_jetstream: false,
            idle_exit: None,
            heartbeat_lateness: None,
            poll: Duration::from_millis(50),
            record_latencies: false,
            checkpoint_every: Some(Duration::from_secs(2)),
            orphan_sweep: Duration::from_secs(30),
        }
    }
}

/// The service's own counts (the featurizer's are in [`Counts`]).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServiceCounts {
    pub events: u64,
    pub published: u64,
    pub suppressed: u64,
    pub bad: u64,
    pub non_finite: u64,
    pub resumed_symbols: u64,
    /// Checkpoints stored, and whether this run started from one.
    pub checkpoints: u64,
    pub restored: bool,
    /// `publish_jetstream`: times a failed publish (and every later one) was sent again.
    pub publish_retries: u64,
}

/// What a run did: counts, the wall and CPU span of the input, and (with `record_latencies`)
/// per-event times (two thread-clock reads per event: they cost ~1 us of CPU each event).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub service: ServiceCounts,
    pub featurizer: Counts,
    /// "idle" (input over, last second closed) or "stopped" (signal; last second left open).
    pub ended: String,
    pub latencies_ns: Vec<u64>,
    pub cpu_ns: Vec<u64>,
    /// Wall ns from the first to the last event processed; process-CPU ns from the first event to
    /// the end of the input (the NATS client's work included: it runs on the same thread).
    pub span_wall_ns: u64,
    pub span_cpu_ns: u64,
}

fn nats_err(what: &str) -> impl FnOnce(String) -> ScorerError + '_ {
    move |e| ScorerError::Nats(format!("{what}: {e}"))
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; the clock ids are valid on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

async fn ensure_stream(js: &jetstream::Context, name: &str) -> Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: name.into(),
        subjects: STREAMING.stream_subjects(name),
        ..Default::default()
    })
    .await
    .map_err(|e| nats_err("create stream")(format!("{name}: {e}")))
}

fn stream_name(subject: &str) -> Result<String> {
    STREAMING
        .stream_of(subject)
        .map(str::to_owned)
        .ok_or_else(|| ScorerError::Contract(format!("no stream captures {subject} in contracts/streaming.json")))
}

/// The last FeatureUpdate's `ts` stored per symbol for timeframe `tf` (the restart checkpoint).
pub async fn last_published(features: &stream::Stream, tf: &str) -> Result<HashMap<String, i64>> {
    let pattern = format!("{}{tf}.>", STREAMING.features_head);
    let mut info = features.info_with_subjects(&pattern).await.map_err(|e| nats_err("stream info")(e.to_string()))?;
    let mut subjects = Vec::new();
    while let Some(item) = info.next().await {
        let (subject, _) = item.map_err(|e| nats_err("stream subjects")(e.to_string()))?;
        subjects.push(subject);
    }
    let mut out = HashMap::new();
    for subject in subjects {
        let msg = features
            .get_last_raw_message_by_subject(&subject)
            .await
            .map_err(|e| nats_err("last message")(format!("{subject}: {e}")))?;
        match crate::contract::decode(&msg.payload) {
            Ok(u) => {
                out.insert(u.symbol_id.into_owned(), u.ts);
            }
            Err(reason) => {
                tracing::warn!(subject, reason = reason.as_str(), "stored FeatureUpdate unreadable; ignored")
            }
        }
    }
    Ok(out)
}

/// The state in this featurizer's checkpoint and the MARKET_DATA sequence it includes, if one
/// is stored, fits the running feature set and lies within MARKET_DATA (`md_last`: a stream
/// deleted and created again holds other messages at those sequences).
async fn restore(
    store: &async_nats::jetstream::object_store::ObjectStore,
    name: &str,
    fs: &FeatureSet,
    sessions: &SessionBook,
    md_last: u64,
) -> Option<(TickFeaturizer, u64)> {
    let c = checkpoint::load(store, name).await?;
    if let Err(why) = c.fits(fs) {
        tracing::warn!(name, why, "checkpoint of another feature set or format; replaying from the session open");
        return None;
    }
    let seq = c.md_seq;
    if seq > md_last {
        tracing::warn!(seq, md_last, "checkpoint past the end of MARKET_DATA; replaying from the session open");
        return None;
    }
    match TickFeaturizer::restore(Plan::new(fs), sessions.clone(), c.state) {
        Ok(f) => Some((f, seq)),
        Err(why) => {
            tracing::warn!(name, why, "checkpoint refused; replaying from the session open");
            None
        }
    }
}

/// A checkpoint of `f` after MARKET_DATA message `md_seq` (every update it produced is
/// published: the caller settled them); `None` before the first message.
fn checkpoint_of(fs: &FeatureSet, f: &TickFeaturizer, md_seq: Option<u64>) -> Option<Checkpoint> {
    let (Some(md_seq), Some(state)) = (md_seq, f.snapshot()) else { return None };
    Some(Checkpoint {
        format: checkpoint::FORMAT,
        feature_set: fs.name.clone(),
        version: fs.version.clone(),
        tf: fs.tf.clone(),
        md_seq,
        state,
    })
}

/// Where checkpoints go: the object store, its context (a longer ack timeout), the object's name
/// and the stream they let trim.
#[derive(Clone)]
struct Saver {
    js: jetstream::Context,
    store: async_nats::jetstream::object_store::ObjectStore,
    name: String,
    md_name: String,
}

impl Saver {
    /// Store `c`, then trim MARKET_DATA below the lowest checkpoint; whether `c` was stored.
    /// Failures (NATS down) are logged: the next period tries again, and a restart meanwhile
    /// replays from the previous checkpoint. Runs as its own task, so a request that waits out a
    /// NATS restart never holds up the featurizer (a put on the loop did: 10 s stalls in the soak).
    async fn save(self, c: Checkpoint) -> bool {
        if let Err(e) = checkpoint::save(&self.store, &self.name, c).await {
            tracing::warn!(error = %e, "checkpoint not stored");
            return false;
        }
        let trimmed = match crate::retention::checkpoint_floors(&self.js).await {
            Ok(Some(floors)) => crate::retention::trim_consumed(&self.js, &self.md_name, &floors).await,
            Ok(None) => Ok(0),
            Err(e) => Err(e),
        };
        if let Err(e) = trimmed {
            tracing::warn!(error = %e, "MARKET_DATA not trimmed");
        }
        true
    }

    /// Purge the chunks of puts cut short once older than `min_age` (a task of its own too).
    async fn sweep(self, min_age: Duration) {
        match checkpoint::purge_orphans(&self.js, min_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(puts = n, "purged the chunks of checkpoints cut short"),
            Err(e) => tracing::debug!(error = %e, "orphan chunks not swept"),
        }
    }
}

enum Input {
    Core(async_nats::Subscriber),
    Js(Box<consumer::pull::Ordered>),
}

impl Input {
    /// The next message and, from JetStream, its stream sequence.
    async fn next(&mut self) -> Option<(async_nats::Message, Option<u64>)> {
        match self {
            Input::Core(sub) => sub.next().await.map(|m| (m, None)),
            Input::Js(ordered) => loop {
                match ordered.next().await? {
                    Ok(m) => {
                        let seq = m.info().ok().map(|i| i.stream_sequence);
                        return Some((m.message, seq));
                    }
                    Err(e) => tracing::warn!(error = %e, "ordered consumer error; it recreates itself"),
                }
            },
        }
    }
}

/// One JetStream publish in flight: what to send again, and its ack (None: the send itself failed).
struct Pending {
    subject: Subject,
    msg_id: String,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
}

/// Publishing side: subjects per symbol, the restart checkpoint, the counts.
struct Output {
    client: async_nats::Client,
    js: Option<jetstream::Context>,
    feature_set: String,
    tf: String,
    subjects: Vec<Option<Subject>>,
    resume: Vec<i64>,
    pending: std::collections::VecDeque<Pending>,
    buf: Vec<u8>,
    counts: ServiceCounts,
}

impl Output {
    async fn publish(&mut self, f: &mut TickFeaturizer) -> Result<()> {
        let nf = f.n_features();
        for (k, &(sym, ts)) in f.rows.iter().enumerate() {
            let s = sym as usize;
            if s < self.resume.len() && ts <= self.resume[s] {
                self.counts.suppressed += 1;
                continue;
            }
            if self.subjects.len() <= s {
                self.subjects.resize(s + 1, None);
            }
            let name = f.name(sym);
            let subject = self.subjects[s]
                .get_or_insert_with(|| {
                    Subject::from(STREAMING.template("features").render(&[("tf", &self.tf), ("symbol", name)]))
                })
                .clone();
            self.buf.clear();
            if encode_update(&mut self.buf, name, &self.tf, ts, &self.feature_set, &f.values[k * nf..(k + 1) * nf])
                .is_none()
            {
                self.counts.non_finite += 1;
                tracing::error!(symbol = name, ts, "non-finite feature value; update not published");
                continue;
            }
            let mut headers = HeaderMap::new();
            let msg_id = format!("{}.{}.{}", self.feature_set, name, ts.div_euclid(NS_PER_S));
            headers.insert("Nats-Msg-Id", msg_id.as_str()); // JetStream drops a re-sent row
            let payload = Bytes::copy_from_slice(&self.buf);
            match &self.js {
                Some(js) => {
                    let ack = js.publish_with_headers(subject.clone(), headers, payload.clone()).await.ok();
                    self.pending.push_back(Pending { subject, msg_id, payload, ack });
                    // counted when acked
                }
                None => {
                    self.client
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .map_err(|e| nats_err("publish")(e.to_string()))?;
                    self.counts.published += 1;
                }
            }
        }
        f.clear_rows();
        if self.pending.len() >= MAX_IN_FLIGHT {
            self.settle(MAX_IN_FLIGHT / 2).await;
        }
        Ok(())
    }

    /// Collect acks in send order until at most `keep` publishes are in flight; at the first
    /// failure, send it and every later one again (same order, same `Nats-Msg-Id`) and go on.
    async fn settle(&mut self, keep: usize) {
        let Some(js) = self.js.clone() else { return };
        while self.pending.len() > keep {
            let upto = self.pending.len() - keep;
            let mut failed = None;
            for (i, p) in self.pending.iter_mut().take(upto).enumerate() {
                let ok = match p.ack.take() {
                    Some(ack) => ack.await.is_ok(),
                    None => false,
                };
                if !ok {
                    failed = Some(i); // the later acks are not awaited: those rows are sent again anyway
                    break;
                }
            }
            let Some(first) = failed else {
                self.pending.drain(..upto);
                self.counts.published += upto as u64;
                continue;
            };
            self.pending.drain(..first);
            self.counts.published += first as u64;
            self.counts.publish_retries += 1;
            tracing::warn!(resend = self.pending.len(), "FEATURES publish failed; sending it and the later ones again");
            tokio::time::sleep(RETRY_PAUSE).await;
            for p in self.pending.iter_mut() {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", p.msg_id.as_str());
                p.ack = js.publish_with_headers(p.subject.clone(), headers, p.payload.clone()).await.ok();
            }
        }
    }
}

/// Run the featurizer until `shutdown` resolves or the input is idle for `idle_exit`.
pub async fn run(
    cfg: Config,
    feature_set: &FeatureSet,
    sessions: SessionBook,
    shutdown: impl Future<Output = ()>,
) -> Result<Report> {
    let client = async_nats::ConnectOptions::new()
        .name("mps-featurizer")
        .max_reconnects(None)
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(&cfg.nats_url)
        .await
        .map_err(|e| nats_err("connect")(format!("{}: {e}", cfg.nats_url)))?;
    let js = jetstream::ContextBuilder::new().timeout(ACK_TIMEOUT).build(client.clone());
    let (md_name, features_name) = (stream_name("trades")?, stream_name("features")?);
    let mut md_stream = ensure_stream(&js, &md_name).await?;
    let features = ensure_stream(&js, &features_name).await?;
    let ckpt_js = jetstream::ContextBuilder::new().timeout(CHECKPOINT_TIMEOUT).build(client.clone());
    let ckpt = match (cfg.consume, cfg.checkpoint_every) {
        (Consume::JetStream, Some(every)) => Some((
            Saver {
                js: ckpt_js.clone(),
                store: checkpoint::store(&ckpt_js).await?,
                name: checkpoint::object_name(feature_set),
                md_name: md_name.clone(),
            },
            every,
        )),
        _ => None,
    };
    let restored = match &ckpt {
        Some((saver, _)) => {
            let md_last =
                md_stream.info().await.map_err(|e| nats_err("stream info")(e.to_string()))?.state.last_sequence;
            restore(&saver.store, &saver.name, feature_set, &sessions, md_last).await
        }
        None => None,
    };
    let (mut f, last, mut md_seq) = match restored {
        Some((f, seq)) => (f, HashMap::new(), Some(seq)),
        None => {
            let last = last_published(&features, &feature_set.tf).await?;
            (TickFeaturizer::new(Plan::new(feature_set), sessions), last, None)
        }
    };
    let mut resume = Vec::new();
    let mut replay_from: Option<i64> = None;
    for (symbol, ts) in &last {
        let id = f.intern(symbol) as usize;
        if resume.len() <= id {
            resume.resize(id + 1, -1);
        }
        resume[id] = *ts;
        if let Some((open, _)) = f.sessions.find(*ts) {
            replay_from = Some(replay_from.map_or(open, |r: i64| r.min(open)));
        }
    }
    let subjects = Subjects::default();
    let mut input = match cfg.consume {
        Consume::Core => {
            Input::Core(client.subscribe(subjects.wildcard()).await.map_err(|e| nats_err("subscribe")(e.to_string()))?)
        }
        Consume::JetStream => {
            let deliver_policy = match (md_seq, replay_from) {
                (Some(seq), _) => consumer::DeliverPolicy::ByStartSequence { start_sequence: seq + 1 },
                (None, Some(open)) => consumer::DeliverPolicy::ByStartTime {
                    start_time: async_nats::datetime::from_nanos(open as i128)
                        .map_err(|e| nats_err("replay start")(e.to_string()))?,
                },
                (None, None) => consumer::DeliverPolicy::All,
            };
            let ordered = md_stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subjects: subjects.patterns(),
                    deliver_policy,
                    max_expires: PULL_EXPIRES,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_err("create ordered consumer")(e.to_string()))?;
            Input::Js(Box::new(ordered.messages().await.map_err(|e| nats_err("consume")(e.to_string()))?))
        }
    };
    tracing::info!(
        feature_set = feature_set.name,
        version = feature_set.version,
        resumed = last.len(),
        replay_from,
        restored_at = md_seq,
        "featurizer consuming"
    );
    client.flush().await.map_err(|e| nats_err("flush")(e.to_string()))?;
    println!("ready");

    let mut out = Output {
        client: client.clone(),
        js: cfg.publish_jetstream.then(|| js.clone()),
        feature_set: feature_set.name.clone(),
        tf: feature_set.tf.clone(),
        subjects: Vec::new(),
        resume,
        pending: std::collections::VecDeque::new(),
        buf: Vec::with_capacity(1024),
        counts: ServiceCounts { resumed_symbols: last.len() as u64, restored: md_seq.is_some(), ..Default::default() },
    };
    let mut saved = (md_seq, 0u64); // the position and output count of the last checkpoint
    let mut last_saved = Instant::now();
    let mut last_sweep = Instant::now();
    let mut saving: Option<tokio::task::JoinHandle<bool>> = None; // the checkpoint being stored
    let mut sweeping: Option<tokio::task::JoinHandle<()>> = None;
    let mut report = Report::default();
    let mut first: Option<(Instant, u64)> = None;
    let mut last_seen = Instant::now();
    let mut tick = tokio::time::interval(cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lateness_ns = cfg.heartbeat_lateness.map(|d| d.as_nanos() as i64);
    let mut drained = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                if let Some(l) = lateness_ns {
                    f.advance(now_ns() - l); // close quiet symbols' seconds on the clock
                    out.publish(&mut f).await?;
                }
                if f.has_due() && last_seen.elapsed() >= cfg.poll {
                    f.drain(); // the input paused: publish every due second now rather than at the next tick
                    out.publish(&mut f).await?;
                }
                out.settle(0).await;
                if let Some((saver, every)) = &ckpt {
                    let progress = (md_seq, out.counts.published);
                    let idle = saving.as_ref().is_none_or(|t| t.is_finished());
                    if last_saved.elapsed() >= *every && progress != saved && idle {
                        if let Some(done) = saving.take() {
                            out.counts.checkpoints += u64::from(done.await.unwrap_or(false));
                        }
                        if let Some(c) = checkpoint_of(feature_set, &f, md_seq) {
                            saving = Some(tokio::spawn(saver.clone().save(c)));
                        }
                        saved = progress; // a failed save waits for the next period too
                        last_saved = Instant::now();
                    }
                    if last_sweep.elapsed() >= cfg.orphan_sweep && sweeping.as_ref().is_none_or(|t| t.is_finished()) {
                        sweeping = Some(tokio::spawn(saver.clone().sweep(cfg.orphan_sweep)));
                        last_sweep = Instant::now();
                    }
                }
                if let Some(idle) = cfg.idle_exit {
                    let patience = if out.counts.events > 0 { idle } else { idle.max(FIRST_MESSAGE_WAIT) };
                    if last_seen.elapsed() >= patience {
                        drained = true;
                        break;
                    }
                }
            }
            msg = input.next() => {
                let Some((msg, seq)) = msg else {
                    tracing::warn!("input subscription closed");
                    break;
                };
                let (t0, c0) = if cfg.record_latencies {
                    (Some(Instant::now()), cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID))
                } else {
                    (None, 0)
                };
                if first.is_none() {
                    first = Some((Instant::now(), cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)));
                }
                out.counts.events += 1;
                match subjects.decode(&msg.subject, &msg.payload) {
                    Ok(Event::Trade { symbol, ts, price, size }) => {
                        let id = f.intern(&symbol);
                        f.on_trade(id, ts, price, size);
                    }
                    Ok(Event::Quote { symbol, ts, bid, bid_size, ask, ask_size }) => {
                        let id = f.intern(&symbol);
                        f.on_quote(id, ts, bid, bid_size, ask, ask_size);
                    }
                    Err(e) => {
                        out.counts.bad += 1;
                        tracing::debug!(error = e, "bad market-data message dropped");
                    }
                }
                if !f.rows.is_empty() {
                    out.publish(&mut f).await?;
                }
                if seq.is_some() {
                    md_seq = seq;
                }
                if let Some(t0) = t0 {
                    report.latencies_ns.push(t0.elapsed().as_nanos() as u64);
                    report.cpu_ns.push(cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID).saturating_sub(c0));
                }
                last_seen = Instant::now();
            }
        }
    }
    // the idle wait before an idle exit costs a poll every 50 ms: next to nothing of this CPU span
    let end_cpu = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    if drained {
        f.flush(); // the input is over: its last second is complete (a stop leaves it open, as a crash does)
        out.publish(&mut f).await?;
    }
    out.settle(0).await;
    if let Some(t) = sweeping {
        t.abort();
    }
    if let Some((saver, _)) = &ckpt {
        if let Some(done) = saving.take() {
            out.counts.checkpoints += u64::from(done.await.unwrap_or(false));
        }
        if (md_seq, out.counts.published) != saved {
            if let Some(c) = checkpoint_of(feature_set, &f, md_seq) {
                out.counts.checkpoints += u64::from(saver.clone().save(c).await);
            }
        }
    }
    client.flush().await.map_err(|e| nats_err("flush")(e.to_string()))?;
    if let Some((t0, c0)) = first {
        report.span_wall_ns = last_seen.saturating_duration_since(t0).as_nanos() as u64;
        report.span_cpu_ns = end_cpu.saturating_sub(c0);
    }
    report.service = out.counts;
    report.featurizer = f.counts;
    report.ended = if drained { "idle" } else { "stopped" }.into();
    Ok(report)
}
