//! The NATS service: FeatureUpdates in, Signals and dead letters out, champion hot swap from KV.
//!
//! One scoring loop owns the `Scorer`; a watcher task loads and verifies candidate models off the
//! hot path and hands them over a channel, so a swap happens between two micro-batches and no
//! update is dropped. `run` takes a shutdown future (SIGTERM in `main`, a oneshot in tests).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::config::SizingConfig;
use crate::engine::Scorer;
use crate::error::{Result, ScorerError};
use crate::metrics::Metrics;
use crate::model::{Model, RuntimeOptions};
use crate::sizing::RiskState;
use crate::streaming::STREAMING;

/// How FeatureUpdates arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Durable pull consumer on stream `stream`: a restart resumes where it stopped.
    JetStream { stream: String, durable: String },
    /// Plain subscription: lowest latency, no replay.
    Core,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub nats_url: String,
    pub model_name: String,
    pub bootstrap_model: Option<PathBuf>,
    pub sizing: SizingConfig,
    pub runtime: RuntimeOptions,
    pub mode: Mode,
    pub subject: String,
    pub max_batch: usize,
    pub http_addr: Option<SocketAddr>,
    /// Create the SIGNALS and DEADLETTER streams if missing (persist outputs in JetStream).
    pub ensure_streams: bool,
}

/// The KV value at `models/champion.<model_name>` (contracts/champion_pointer.schema.json).
#[derive(Debug, Clone, Deserialize)]
pub struct ChampionPointer {
    pub model_name: String,
    pub model_version: String,
    pub onnx_uri: String,
    pub sha256: String,
    #[serde(default)]
    pub promoted_at: Option<i64>,
}

impl ChampionPointer {
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.onnx_uri.strip_prefix("file://").unwrap_or(&self.onnx_uri))
    }
}

fn nats_err(what: &str) -> impl FnOnce(String) -> ScorerError + '_ {
    move |e| ScorerError::Nats(format!("{what}: {e}"))
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Load and verify the model a pointer names (blocking: run it off the async workers).
pub async fn load_pointer(pointer: ChampionPointer, opts: RuntimeOptions) -> Result<Model> {
    tokio::task::spawn_blocking(move || Model::load(&pointer.path(), Some(&pointer.sha256), &opts))
        .await
        .map_err(|e| ScorerError::Nats(format!("model loader task: {e}")))?
}

async fn load_path(path: &Path, opts: RuntimeOptions) -> Result<Model> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Model::load(&path, None, &opts))
        .await
        .map_err(|e| ScorerError::Nats(format!("model loader task: {e}")))?
}

enum Source {
    Core(async_nats::Subscriber),
    Js(consumer::pull::Stream),
}

struct Incoming {
    msg: async_nats::Message,
    js: Option<jetstream::Message>,
}

impl Source {
    async fn next(&mut self) -> Option<Incoming> {
        loop {
            match self {
                Source::Core(sub) => return sub.next().await.map(|msg| Incoming { msg, js: None }),
                Source::Js(stream) => match stream.next().await? {
                    Ok(m) => return Some(Incoming { msg: m.message.clone(), js: Some(m) }),
                    Err(e) => tracing::warn!(error = %e, "jetstream consumer error; continuing"),
                },
            }
        }
    }

    fn try_next(&mut self) -> Option<Incoming> {
        self.next().now_or_never().flatten()
    }
}

async fn ensure_stream(js: &jetstream::Context, name: &str, subjects: &[String]) -> Result<()> {
    js.get_or_create_stream(stream::Config { name: name.into(), subjects: subjects.to_vec(), ..Default::default() })
        .await
        .map(|_| ())
        .map_err(|e| nats_err("create stream")(format!("{name}: {e}")))
}

async fn models_bucket(js: &jetstream::Context) -> Result<kv::Store> {
    let m = &STREAMING.models;
    match js.get_key_value(m.bucket.as_str()).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(kv::Config { bucket: m.bucket.clone(), history: m.history, ..Default::default() })
            .await
            .map_err(|e| nats_err("create kv bucket")(format!("{}: {e}", m.bucket))),
    }
}

/// Watch the champion key; load and verify each new pointer and send the model to the loop.
async fn watch_champion(store: kv::Store, key: String, serving_sha: String, opts: RuntimeOptions,
                        metrics: Arc<Metrics>, tx: mpsc::Sender<Model>) {
    let mut last_sha = serving_sha;
    let mut watch = match store.watch_with_history(&key).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, key, "cannot watch champion pointer; hot swap disabled");
            return;
        }
    };
    while let Some(entry) = watch.next().await {
        let Ok(entry) = entry else { continue };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let pointer: ChampionPointer = match serde_json::from_slice(&entry.value) {
            Ok(p) => p,
            Err(e) => {
                metrics.model_rejects.fetch_add(1, Relaxed);
                tracing::error!(error = %e, key, "champion pointer is not valid JSON; keeping the current model");
                continue;
            }
        };
        if pointer.sha256.eq_ignore_ascii_case(&last_sha) {
            continue;
        }
        match load_pointer(pointer.clone(), opts).await {
            Ok(model) => {
                last_sha = model.sha256.clone();
                if tx.send(model).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                metrics.model_rejects.fetch_add(1, Relaxed);
                tracing::error!(error = %e, version = pointer.model_version, "candidate model refused; keeping the current model");
            }
        }
    }
}

struct Outbox {
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    buf: Vec<u8>,
}

impl Outbox {
    async fn publish_signals(&mut self, scorer: &mut Scorer) {
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
            let subject = STREAMING.template("signals").render(&[("tf", &s.signal.tf), ("symbol", &s.signal.symbol_id)]);
            match self.client.publish(subject, Bytes::copy_from_slice(&self.buf)).await {
                Ok(()) => {
                    self.metrics.signals.fetch_add(1, Relaxed);
                    self.metrics.observe_latency_ns(s.received.elapsed().as_nanos() as u64);
                }
                Err(e) => {
                    self.metrics.publish_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "signal publish failed");
                }
            }
        }
    }

    async fn dead_letter(&mut self, msg: &async_nats::Message, reason: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Mps-Reason", reason);
        headers.insert("Mps-Subject", msg.subject.as_str());
        let subject = STREAMING.template("deadletter").render(&[("subject", msg.subject.as_str())]);
        if let Err(e) = self.client.publish_with_headers(subject, headers, msg.payload.clone()).await {
            self.metrics.publish_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "dead-letter publish failed");
        }
    }
}

async fn ack(last: &mut Option<jetstream::Message>) {
    if let Some(m) = last.take() {
        if let Err(e) = m.ack().await {
            tracing::warn!(error = %e, "ack failed; the batch will be redelivered");
        }
    }
}

/// Run the scorer until `shutdown` resolves.
pub async fn run(cfg: ServiceConfig, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) -> Result<()> {
    let client = async_nats::ConnectOptions::new()
        .name("mps-scorer")
        .connect(&cfg.nats_url)
        .await
        .map_err(|e| nats_err("connect")(format!("{}: {e}", cfg.nats_url)))?;
    let js = jetstream::new(client.clone());
    let store = models_bucket(&js).await?;
    let key = STREAMING.champion_key(&cfg.model_name);

    let mut model = None;
    if let Ok(Some(entry)) = store.entry(key.as_str()).await {
        match serde_json::from_slice::<ChampionPointer>(&entry.value) {
            Ok(p) => match load_pointer(p, cfg.runtime).await {
                Ok(m) => model = Some(m),
                Err(e) => tracing::error!(error = %e, "champion in KV refused at startup"),
            },
            Err(e) => tracing::error!(error = %e, "champion pointer in KV is not valid JSON"),
        }
    }
    if model.is_none() {
        if let Some(path) = &cfg.bootstrap_model {
            model = Some(load_path(path, cfg.runtime).await?);
        }
    }
    let model = model.ok_or_else(|| ScorerError::Contract(format!("no usable champion at models/{key} and no --model given")))?;
    tracing::info!(model = model.meta.model_name, version = model.meta.model_version, device = model.device, "serving");
    metrics.set_model(&model.meta.model_name, &model.meta.model_version, &model.sha256);
    let serving_sha = model.sha256.clone();
    let mut scorer = Scorer::new(model, cfg.sizing.clone(), cfg.max_batch)?;

    if cfg.ensure_streams {
        for subject in ["signals", "deadletter"] {
            let name = STREAMING.stream_of(subject).ok_or_else(|| ScorerError::Contract(format!("no stream captures {subject}")))?;
            ensure_stream(&js, name, &STREAMING.stream_subjects(name)).await?;
        }
    }
    let mut source = match &cfg.mode {
        Mode::Core => Source::Core(client.subscribe(cfg.subject.clone()).await.map_err(|e| nats_err("subscribe")(e.to_string()))?),
        Mode::JetStream { stream: name, durable } => {
            ensure_stream(&js, name, std::slice::from_ref(&cfg.subject)).await?;
            let st = js.get_stream(name).await.map_err(|e| nats_err("get stream")(e.to_string()))?;
            let consumer: consumer::PullConsumer = st
                .get_or_create_consumer(durable, consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: consumer::AckPolicy::All,
                    filter_subject: cfg.subject.clone(),
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 20_000,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_err("create consumer")(e.to_string()))?;
            let messages = consumer.stream().max_messages_per_batch(1000).messages().await;
            Source::Js(messages.map_err(|e| nats_err("consume")(e.to_string()))?)
        }
    };
    let risk_subject = STREAMING.template("risk_state").as_str().to_owned();
    let mut risk_sub = client.subscribe(risk_subject.clone()).await.map_err(|e| nats_err("subscribe risk")(e.to_string()))?;

    let (swap_tx, mut swap_rx) = mpsc::channel::<Model>(2);
    let watcher = tokio::spawn(watch_champion(store, key, serving_sha, cfg.runtime, metrics.clone(), swap_tx));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = match cfg.http_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| ScorerError::Io { path: addr.to_string(), source: e })?;
            let bound = listener.local_addr().map_err(|e| ScorerError::Io { path: addr.to_string(), source: e })?;
            println!("http listening on {bound}");
            Some(tokio::spawn(crate::http::serve(listener, metrics.clone(), async { let _ = http_stop_rx.await; })))
        }
        None => None,
    };
    client.flush().await.map_err(|e| nats_err("flush")(e.to_string()))?;
    metrics.ready.store(true, Relaxed);
    println!("ready");

    let mut out = Outbox { client: client.clone(), metrics: metrics.clone(), buf: Vec::with_capacity(4096) };
    let mut last_js: Option<jetstream::Message> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(candidate) = swap_rx.recv() => {
                let (name, version, sha) = (candidate.meta.model_name.clone(), candidate.meta.model_version.clone(), candidate.sha256.clone());
                match scorer.swap_model(candidate) {
                    Ok(old) => {
                        metrics.model_swaps.fetch_add(1, Relaxed);
                        metrics.set_model(&name, &version, &sha);
                        tracing::info!(from = old.meta.model_version, to = version, "champion swapped");
                    }
                    Err(e) => {
                        metrics.model_rejects.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, version, "candidate model incompatible; keeping the current model");
                    }
                }
            }
            Some(msg) = risk_sub.next() => match serde_json::from_slice::<RiskState>(&msg.payload) {
                Ok(risk) if risk.nav > 0.0 && risk.intraday_drawdown.is_finite() => scorer.set_risk(risk),
                _ => tracing::warn!("ignoring malformed risk state on {risk_subject}"),
            },
            next = source.next() => {
                let Some(mut inc) = next else { break };
                loop {
                    metrics.updates.fetch_add(1, Relaxed);
                    if scorer.needs_flush(&inc.msg.subject) {
                        out.publish_signals(&mut scorer).await;
                        ack(&mut last_js).await;
                    }
                    if let Err(reason) = scorer.ingest(&inc.msg.subject, &inc.msg.payload, Instant::now()) {
                        metrics.deadletter(reason);
                        tracing::debug!(subject = %inc.msg.subject, reason = reason.as_str(), "dead letter");
                        out.dead_letter(&inc.msg, reason.as_str()).await;
                    }
                    if inc.js.is_some() {
                        last_js = inc.js.take();
                    }
                    match source.try_next() {
                        Some(more) => inc = more,
                        None => break,
                    }
                }
                out.publish_signals(&mut scorer).await;
                ack(&mut last_js).await;
            }
        }
    }
    tracing::info!("shutting down: flushing");
    out.publish_signals(&mut scorer).await;
    ack(&mut last_js).await;
    watcher.abort();
    let _ = http_stop_tx.send(());
    if let Some(h) = http {
        let _ = h.await;
    }
    client.flush().await.map_err(|e| nats_err("flush")(e.to_string()))?;
    Ok(())
}
