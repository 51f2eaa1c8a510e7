//! The NATS service: FeatureUpdates in, Signals and dead letters out, champion hot swap from KV.
//!
//! One scoring loop owns the `Scorer`; a watcher task (champion.rs) loads and verifies candidate
//! models off the hot path and hands them over a channel, so a swap happens between two
//! micro-batches and no update is dropped. In JetStream mode the inputs of a batch are acked only
//! after JetStream acked every Signal and dead letter they produced (outbox.rs); a redelivered
//! update that was already scored re-sends its Signal; source.rs keeps the input stream alive across
//! NATS restarts, and a task trims the input stream below what every durable acked (retention.rs).
//! `run` takes a shutdown future (SIGTERM in
//! `main`, a oneshot in tests).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::champion::{self, ChampionPointer, LoadPolicy};
use crate::config::SizingConfig;
use crate::contract::Reject;
use crate::engine::{Limits, Scorer};
use crate::error::{Result, ScorerError};
use crate::metrics::Metrics;
use crate::model::{Model, RuntimeOptions};
use crate::outbox::Outbox;
use crate::sizing::decode_risk;
use crate::source::{Incoming, Source};
use crate::streaming::STREAMING;
use crate::telemetry::{Telemetry, TraceExport, UpdateSpans};
use crate::{request, shadow};

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
    pub limits: Limits,
    /// Keep the last good champion here; a restart serves it before reading KV.
    pub state_dir: Option<PathBuf>,
    pub max_model_bytes: u64,
    pub model_load_timeout: Duration,
    /// Where OpenTelemetry spans go (telemetry.rs); `Off` by default.
    pub traces: TraceExport,
    /// JetStream mode: purge the input stream below what every durable has acked this often
    /// (retention.rs); `None` keeps every update.
    pub trim_inputs: Option<Duration>,
}

fn nats_err(what: &str) -> impl FnOnce(String) -> ScorerError + '_ {
    move |e| ScorerError::Nats(format!("{what}: {e}"))
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
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

async fn ack(last: &mut Option<jetstream::Message>) {
    if let Some(m) = last.take() {
        if let Err(e) = m.ack().await {
            tracing::warn!(error = %e, "ack failed; the batch will be redelivered");
        }
    }
}

/// The champion to start with: the persisted last good one (served at once), else KV's, else --model.
async fn initial_model(cfg: &ServiceConfig, policy: &LoadPolicy, store: &kv::Store, key: &str) -> Result<Model> {
    if let Some(p) = cfg.state_dir.as_deref().and_then(|d| champion::read_persisted(d, &cfg.model_name)) {
        match champion::load_pointer(&p, policy).await {
            Ok(m) => {
                tracing::info!(version = m.meta.model_version, "serving the persisted champion");
                return Ok(m);
            }
            Err(e) => tracing::warn!(error = %e, "persisted champion refused"),
        }
    }
    if let Ok(Some(entry)) = store.entry(key).await {
        match ChampionPointer::parse(&entry.value) {
            Ok(p) => match champion::load_pointer(&p, policy).await {
                Ok(m) => return Ok(m),
                Err(e) => tracing::error!(error = %e, "champion in KV refused at startup"),
            },
            Err(e) => tracing::error!(error = %e, "champion pointer in KV refused"),
        }
    }
    match &cfg.bootstrap_model {
        Some(path) => champion::load_path(path, policy).await,
        None => Err(ScorerError::Contract(format!(
            "no usable champion at {}/{key} and no --model given",
            STREAMING.models.bucket
        ))),
    }
}

/// Handle one input: ingest it, or re-send its Signal (a redelivery already scored), or dead-letter
/// it; a traced input (tracing on and a `traceparent` header) gets a `score.update` span.
fn take(
    scorer: &mut Scorer,
    out: &mut Outbox,
    metrics: &Metrics,
    inc: &Incoming,
    tel: Option<&Telemetry>,
    spans: &mut UpdateSpans,
) {
    metrics.updates.fetch_add(1, Relaxed);
    let span = tel.and_then(|t| spans.start(t, &inc.msg));
    let refused = match scorer.ingest(&inc.msg.subject, &inc.msg.payload, Instant::now()) {
        Ok(()) => None,
        Err(Reject::Duplicate | Reject::Late) if inc.redelivered() => {
            match scorer.sent_for(&inc.msg.subject, &inc.msg.payload) {
                Some(sent) => {
                    out.queue_resend(sent);
                    metrics.resent.fetch_add(1, Relaxed);
                    Some("resent")
                }
                None => {
                    metrics.redelivered_skipped.fetch_add(1, Relaxed);
                    Some("redelivered_skipped")
                }
            }
        }
        Err(reason) => {
            metrics.deadletter(reason);
            tracing::debug!(subject = %inc.msg.subject, reason = reason.as_str(), "dead letter");
            out.queue_dead_letter(&inc.msg, reason.as_str());
            Some(reason.as_str())
        }
    };
    if let Some(span) = span {
        spans.taken(span, &inc.msg.payload, refused);
    }
}

/// Score the open batch and publish its Signals, each traced update's span in its Signal's
/// headers: false when `stop` resolved before JetStream acked them all (see `Outbox::deliver`).
async fn publish_batch<F: Future<Output = ()>>(
    scorer: &mut Scorer,
    out: &mut Outbox,
    tel: Option<&Telemetry>,
    spans: &mut UpdateSpans,
    stop: &mut std::pin::Pin<&mut F>,
) -> bool {
    out.queue_signals(scorer);
    if let (Some(t), false) = (tel, spans.is_empty()) {
        spans.attach(t, out.signal_headers());
    }
    let delivered = out.deliver(scorer, stop).await;
    if !spans.is_empty() {
        spans.end_queued(delivered);
    }
    delivered
}

/// Run the scorer until `shutdown` resolves.
pub async fn run(cfg: ServiceConfig, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) -> Result<()> {
    let policy = LoadPolicy {
        model_name: cfg.model_name.clone(),
        runtime: cfg.runtime,
        max_bytes: cfg.max_model_bytes,
        timeout: cfg.model_load_timeout,
        state_dir: cfg.state_dir.clone(),
    };
    let tel = Telemetry::from_export(&cfg.traces)?;
    if tel.is_some() {
        tracing::info!(export = ?cfg.traces, "OpenTelemetry traces on");
    }
    let tel = tel.as_ref();
    let mut spans = UpdateSpans::default();
    let events = metrics.clone();
    let client = async_nats::ConnectOptions::new()
        .name("mps-scorer")
        .max_reconnects(None)
        .reconnect_delay_callback(crate::source::reconnect_delay)
        .event_callback(move |event| {
            let m = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => m.nats_connected.store(true, Relaxed),
                    async_nats::Event::Disconnected => {
                        m.nats_connected.store(false, Relaxed);
                        tracing::warn!("NATS unreachable; reconnecting");
                    }
                    _ => {}
                }
            }
        })
        .connect(&cfg.nats_url)
        .await
        .map_err(|e| nats_err("connect")(format!("{}: {e}", cfg.nats_url)))?;
    metrics.nats_connected.store(true, Relaxed);
    let js = jetstream::new(client.clone());
    let store = models_bucket(&js).await?;
    let key = STREAMING.champion_key(&cfg.model_name);

    let model = initial_model(&cfg, &policy, &store, &key).await?;
    tracing::info!(model = model.meta.model_name, version = model.meta.model_version, device = model.device, "serving");
    metrics.set_model(&model.meta.model_name, &model.meta.model_version, &model.sha256);
    champion::persist_in_background(&policy, &model);
    let serving_sha = model.sha256.clone();
    let mut scorer = Scorer::new(model, cfg.sizing.clone(), cfg.max_batch)?.with_limits(cfg.limits);

    if cfg.ensure_streams {
        for subject in ["signals", "signals_shadow", "deadletter"] {
            let name = STREAMING
                .stream_of(subject)
                .ok_or_else(|| ScorerError::Contract(format!("no stream captures {subject}")))?;
            ensure_stream(&js, name, &STREAMING.stream_subjects(name)).await?;
        }
    }
    let mut source = match &cfg.mode {
        Mode::Core => {
            Source::Core(client.subscribe(cfg.subject.clone()).await.map_err(|e| nats_err("subscribe")(e.to_string()))?)
        }
        Mode::JetStream { stream: name, durable } => {
            ensure_stream(&js, name, std::slice::from_ref(&cfg.subject)).await?;
            let st = js.get_stream(name).await.map_err(|e| nats_err("get stream")(e.to_string()))?;
            let consumer: consumer::PullConsumer = st
                .get_or_create_consumer(
                    durable,
                    consumer::pull::Config {
                        durable_name: Some(durable.clone()),
                        ack_policy: consumer::AckPolicy::All,
                        filter_subject: cfg.subject.clone(),
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 20_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| nats_err("create consumer")(e.to_string()))?;
            Source::jetstream(consumer, &st).await?
        }
    };
    let trimmer = match (&cfg.mode, cfg.trim_inputs) {
        (Mode::JetStream { stream: name, .. }, Some(every)) => {
            Some(tokio::spawn(crate::retention::trim_every(js.clone(), name.clone(), every)))
        }
        _ => None,
    };
    // Outputs go through JetStream (acked) when inputs do and the signal stream exists.
    let signals_stream = STREAMING.stream_of("signals").unwrap_or_default();
    let outputs_js = matches!(cfg.mode, Mode::JetStream { .. }) && js.get_stream(signals_stream).await.is_ok();
    let risk_subject = STREAMING.template("risk_state").as_str().to_owned();
    let mut risk_sub =
        client.subscribe(risk_subject.clone()).await.map_err(|e| nats_err("subscribe risk")(e.to_string()))?;

    // Score requests from the HTTP API: one subject per model; replicas share the queue group.
    let score_subject = STREAMING.score_subject(&cfg.model_name);
    let mut requests = client
        .queue_subscribe(score_subject.clone(), format!("scorer-{}", cfg.model_name))
        .await
        .map_err(|e| nats_err("subscribe score requests")(format!("{score_subject}: {e}")))?;

    let (swap_tx, mut swap_rx) = mpsc::channel::<Option<Model>>(2);
    let (challenger_tx, mut challenger_rx) = mpsc::channel::<Option<Model>>(2);
    let challenger_key = STREAMING.challenger_key(&cfg.model_name);
    let (p, m) = (policy.clone(), metrics.clone());
    let challenger_watcher =
        tokio::spawn(champion::watch(store.clone(), challenger_key, "challenger", String::new(), p, m, challenger_tx));
    let (p, m) = (policy.clone(), metrics.clone());
    let watcher = tokio::spawn(champion::watch(store, key, "champion", serving_sha, p, m, swap_tx));
    let mut shadow: Option<Scorer> = None;
    let mut shadow_buf = Vec::with_capacity(4096);
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = match cfg.http_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ScorerError::Io { path: addr.to_string(), source: e })?;
            let bound = listener.local_addr().map_err(|e| ScorerError::Io { path: addr.to_string(), source: e })?;
            println!("http listening on {bound}");
            Some(tokio::spawn(crate::http::serve(listener, metrics.clone(), async {
                let _ = http_stop_rx.await;
            })))
        }
        None => None,
    };
    client.flush().await.map_err(|e| nats_err("flush")(e.to_string()))?;
    metrics.ready.store(true, Relaxed);
    println!("ready");

    let mut out = Outbox::new(client.clone(), outputs_js.then(|| js.clone()), metrics.clone());
    let mut last_js: Option<jetstream::Message> = None;
    tokio::pin!(shutdown);
    'serve: loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // a deleted champion pointer (None) changes nothing: the scorer keeps serving its model
            Some(Some(candidate)) = swap_rx.recv() => {
                let (name, version, sha) = (candidate.meta.model_name.clone(), candidate.meta.model_version.clone(), candidate.sha256.clone());
                if scorer.check_compatible(&candidate).is_ok() {
                    champion::persist_in_background(&policy, &candidate);
                }
                match scorer.swap_model(candidate) {
                    Ok(old) => {
                        metrics.model_swaps.fetch_add(1, Relaxed);
                        metrics.set_model(&name, &version, &sha);
                        tracing::info!(from = old.meta.model_version, to = version, "champion swapped");
                        if shadow.as_ref().is_some_and(|s| s.model().sha256.eq_ignore_ascii_case(&sha)) {
                            shadow = None; // the challenger was promoted: it is the champion now
                            metrics.set_challenger(None);
                            metrics.challenger_swaps.fetch_add(1, Relaxed);
                            tracing::info!(version, "challenger promoted; shadow scoring stops");
                        }
                    }
                    Err(e) => {
                        metrics.model_rejects.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, version, "candidate model incompatible; keeping the current model");
                    }
                }
            }
            Some(candidate) = challenger_rx.recv() => {
                metrics.challenger_swaps.fetch_add(1, Relaxed);
                match candidate {
                    None => {
                        shadow = None;
                        metrics.set_challenger(None);
                        tracing::info!("challenger pointer removed; shadow scoring stops");
                    }
                    Some(model) => {
                        let (name, version, sha) = (model.meta.model_name.clone(), model.meta.model_version.clone(), model.sha256.clone());
                        match shadow::start(&scorer, model, &cfg.sizing, cfg.max_batch, cfg.limits) {
                            Ok(s) => {
                                shadow = Some(s);
                                metrics.set_challenger(Some((&name, &version, &sha)));
                                tracing::info!(version, "scoring the challenger in shadow");
                            }
                            Err(e) => {
                                metrics.model_rejects.fetch_add(1, Relaxed);
                                tracing::error!(error = %e, version, "challenger incompatible; no shadow scoring");
                            }
                        }
                    }
                }
            }
            Some(msg) = risk_sub.next() => match decode_risk(&msg.payload) {
                Ok(risk) => {
                    if risk.kill || risk.intraday_drawdown >= cfg.sizing.max_intraday_drawdown {
                        tracing::warn!(drawdown = risk.intraday_drawdown, kill = risk.kill, "risk state: kill switch on, sizes go to 0");
                    }
                    metrics.risk_states.fetch_add(1, Relaxed);
                    scorer.set_risk(risk);
                    if let Some(s) = shadow.as_mut() {
                        s.set_risk(risk);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring malformed risk state on {risk_subject}"),
            },
            Some(req) = requests.next() => {
                metrics.score_requests.fetch_add(1, Relaxed);
                let Some(reply) = req.reply else { continue };
                let (answer, headers) = request::answer_traced(&mut scorer, &cfg.model_name, tel, req.headers.as_ref(), &req.payload, now_ns());
                if answer.refusal.is_some() {
                    metrics.score_refusals.fetch_add(1, Relaxed);
                }
                let sent = match headers {
                    Some(h) => client.publish_with_headers(reply, h, answer.body.into()).await,
                    None => client.publish(reply, answer.body.into()).await,
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "score reply not sent");
                }
            }
            next = source.next() => {
                let Some(mut inc) = next else { break };
                scorer.set_now(now_ns());
                if let Some(s) = shadow.as_mut() {
                    s.set_now(now_ns());
                }
                loop {
                    if scorer.needs_flush(&inc.msg.subject) || shadow.as_ref().is_some_and(|s| s.needs_flush(&inc.msg.subject)) {
                        if let Some(s) = shadow.as_mut() {
                            shadow::publish(&client, s, &metrics, &mut shadow_buf).await;
                        }
                        if !publish_batch(&mut scorer, &mut out, tel, &mut spans, &mut shutdown).await {
                            break 'serve;
                        }
                        ack(&mut last_js).await;
                    }
                    take(&mut scorer, &mut out, &metrics, &inc, tel, &mut spans);
                    if let Some(s) = shadow.as_mut() {
                        // refusals are the champion path's to dead-letter; the shadow only skips them
                        let _ = s.ingest(&inc.msg.subject, &inc.msg.payload, Instant::now());
                    }
                    if inc.js.is_some() {
                        last_js = inc.js.take();
                    }
                    match source.try_next() {
                        Some(more) => inc = more,
                        None => break,
                    }
                }
                if let Some(s) = shadow.as_mut() {
                    shadow::publish(&client, s, &metrics, &mut shadow_buf).await;
                }
                if !publish_batch(&mut scorer, &mut out, tel, &mut spans, &mut shutdown).await {
                    break 'serve;
                }
                ack(&mut last_js).await;
                metrics.evictions.store(scorer.evictions(), Relaxed);
                metrics.series.store(scorer.symbols() as u64, Relaxed);
            }
        }
    }
    tracing::info!("shutting down: flushing");
    let grace = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(grace);
    if publish_batch(&mut scorer, &mut out, tel, &mut spans, &mut grace).await {
        ack(&mut last_js).await;
    } else {
        tracing::warn!(
            pending = out.pending(),
            "outputs not acked before exit; their inputs stay unacked and will be redelivered"
        );
    }
    watcher.abort();
    challenger_watcher.abort();
    if let Some(t) = trimmer {
        t.abort();
    }
    let _ = http_stop_tx.send(());
    if let Some(h) = http {
        let _ = h.await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    if let Some(t) = tel {
        t.shutdown();
    }
    Ok(())
}
