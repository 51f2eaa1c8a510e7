//! The scoring core, free of I/O: validate updates, keep rings, micro-batch, run the model, size.
//!
//! The NATS service (`service.rs`) feeds it raw messages and publishes what it returns; tests and
//! benchmarks drive it directly.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::config::SizingConfig;
use crate::contract::{decode, series_key, validate, Reject};
use crate::error::{Result, ScorerError};
use crate::model::{Model, ModelMeta};
use crate::ring::Ring;
use crate::signal::{compute_signal, Buckets, Scratch, Signal, SignalInputs, UpdateRef};
use crate::sizing::RiskState;

/// How a model's outputs map onto the sizing config.
#[derive(Debug, Clone)]
pub struct Binding {
    pub buckets: Buckets,
    pub horizon_index: usize,
    pub realized_vol_index: Option<usize>,
    pub adv_index: Option<usize>,
}

impl Binding {
    /// Check that `cfg` fits `meta` (horizon and named features exist).
    pub fn new(meta: &ModelMeta, cfg: &SizingConfig) -> Result<Self> {
        let horizon_index = meta.horizons.iter().position(|&h| h == cfg.horizon).ok_or_else(|| {
            ScorerError::Contract(format!(
                "sizing horizon {} not among model {} horizons {:?}",
                cfg.horizon, meta.model_name, meta.horizons
            ))
        })?;
        let feature = |name: &Option<String>| -> Result<Option<usize>> {
            match name {
                None => Ok(None),
                Some(n) => meta.feature_index(n).map(Some).ok_or_else(|| {
                    ScorerError::Contract(format!("sizing names feature {n:?} which model {} lacks", meta.model_name))
                }),
            }
        };
        Ok(Binding {
            buckets: Buckets::from_bps(&meta.bucket_edges_bps),
            horizon_index,
            realized_vol_index: feature(&cfg.realized_vol_feature)?,
            adv_index: feature(&cfg.adv_feature)?,
        })
    }

    pub fn inputs<'a>(&'a self, meta: &'a ModelMeta, cfg: &'a SizingConfig) -> SignalInputs<'a> {
        SignalInputs {
            meta,
            buckets: &self.buckets,
            cfg,
            horizon_index: self.horizon_index,
            realized_vol_index: self.realized_vol_index,
            adv_index: self.adv_index,
        }
    }
}

/// Bounds on what one scorer keeps and accepts (DESIGN section 6: bounded inputs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Series (tf, symbol) kept at most; a new one past the cap evicts the least recently updated.
    pub max_series: usize,
    /// An update stamped further than this past the clock is refused (`future_ts`).
    pub max_future_ns: i64,
    /// A seq further than this past the series' last is refused (`seq_jump`).
    pub max_seq_jump: i64,
    /// Signals kept per series to re-send when JetStream redelivers an update already scored.
    pub resend_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_series: 20_000, max_future_ns: 60_000_000_000, max_seq_jump: 1_000_000_000, resend_depth: 4 }
    }
}

/// A published signal kept for re-sending: (seq, ts, subject, message id, JSON).
pub type Sent = (i64, i64, String, String, Bytes);

#[derive(Clone)]
struct Series {
    key: String,
    symbol_id: String,
    tf: String,
    ring: Ring,
    last_seq: i64,
    last_ts: i64,
    last_known_at: i64,
    in_batch: bool,
    touched: u64,
    sent: VecDeque<Sent>,
}

struct Pending {
    slot: usize,
    ts: i64,
    known_at: i64,
    seq: i64,
    received: Instant,
}

/// A scored update: the signal, its series slot and when its update was received (latency).
pub struct Scored {
    pub signal: Signal,
    pub slot: usize,
    pub received: Instant,
}

/// Why a score request got no Signal (the `code` of contracts/score_error.schema.json).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No ring is held for this (tf, symbol).
    UnknownSymbol,
    /// The ring holds fewer updates than the model's lookback.
    NotEnoughHistory { have: u64, need: usize },
    /// The model call failed or its output was not a distribution.
    ModelError(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownSymbol => "unknown_symbol",
            Refusal::NotEnoughHistory { .. } => "not_enough_history",
            Refusal::ModelError(_) => "model_error",
        }
    }
}

/// Per-symbol state plus the champion; one instance per scoring loop.
pub struct Scorer {
    model: Model,
    sizing: SizingConfig,
    binding: Binding,
    series: Vec<Series>,
    index: HashMap<String, usize>,
    batch: Vec<Pending>,
    max_batch: usize,
    input: Vec<f32>,
    risk: RiskState,
    scratch: Scratch,
    invalid_outputs: u64,
    limits: Limits,
    now_ns: Option<i64>,
    clock: u64,
    evictions: u64,
    /// Input buffer of one window (score requests; never the open batch's).
    one: Vec<f32>,
}

impl Scorer {
    pub fn new(model: Model, sizing: SizingConfig, max_batch: usize) -> Result<Self> {
        let binding = Binding::new(&model.meta, &sizing)?;
        let max_batch = max_batch.max(1);
        let input = vec![0.0; max_batch * model.meta.lookback * model.meta.n_features()];
        let risk = RiskState { nav: sizing.nav, intraday_drawdown: 0.0, kill: false };
        Ok(Scorer {
            model,
            sizing,
            binding,
            series: Vec::new(),
            index: HashMap::new(),
            batch: Vec::with_capacity(max_batch),
            max_batch,
            input,
            risk,
            scratch: Scratch::default(),
            invalid_outputs: 0,
            limits: Limits { max_series: Limits::default().max_series.max(max_batch), ..Limits::default() },
            now_ns: None,
            clock: 0,
            evictions: 0,
            one: Vec::new(),
        })
    }

    /// Replace the limits (max_series is raised to max_batch: a batch must fit).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Limits { max_series: limits.max_series.max(self.max_batch), ..limits };
        self
    }

    /// The wall clock (UTC ns) future timestamps are judged against; unset, they are not judged.
    pub fn set_now(&mut self, now_ns: i64) {
        self.now_ns = Some(now_ns);
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Keep a published signal so a redelivery of its update can re-send it.
    pub fn remember(&mut self, slot: usize, sent: Sent) {
        let depth = self.limits.resend_depth;
        if let Some(s) = self.series.get_mut(slot) {
            if depth == 0 {
                return;
            }
            if s.sent.len() >= depth {
                s.sent.pop_front();
            }
            s.sent.push_back(sent);
        }
    }

    /// The signal already published for this (redelivered) update, if still kept.
    pub fn sent_for(&self, subject: &str, payload: &[u8]) -> Option<&Sent> {
        let u = decode(payload).ok()?;
        let slot = *self.index.get(series_key(subject)?)?;
        self.series[slot].sent.iter().find(|(seq, ts, ..)| *seq == u.seq && *ts == u.ts)
    }

    /// A slot for a new series: append below the cap, else evict the least recently updated
    /// series that is not in the open batch.
    fn new_slot(&mut self, key: &str, symbol_id: &str, tf: &str) -> usize {
        let meta = &self.model.meta;
        let fresh = Series {
            key: key.to_owned(),
            symbol_id: symbol_id.to_owned(),
            tf: tf.to_owned(),
            ring: Ring::new(meta.lookback, meta.n_features()),
            last_seq: i64::MIN,
            last_ts: i64::MIN,
            last_known_at: i64::MIN,
            in_batch: false,
            touched: 0,
            sent: VecDeque::new(),
        };
        let slot = if self.series.len() < self.limits.max_series {
            self.series.push(fresh);
            self.series.len() - 1
        } else {
            // max_series >= max_batch and needs_flush() keeps the batch below max_batch here, so
            // some series is outside the batch.
            let slot = self
                .series
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.in_batch)
                .min_by_key(|(_, s)| s.touched)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let old = std::mem::replace(&mut self.series[slot], fresh);
            self.index.remove(&old.key);
            self.evictions += 1;
            slot
        };
        self.index.insert(key.to_owned(), slot);
        slot
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.model.meta
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn symbols(&self) -> usize {
        self.series.len()
    }

    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    pub fn invalid_outputs(&self) -> u64 {
        self.invalid_outputs
    }

    pub fn set_risk(&mut self, risk: RiskState) {
        self.risk = risk;
    }

    pub fn risk(&self) -> RiskState {
        self.risk
    }

    /// Take over `other`'s per-series state (rings, last seq/ts, resized to this model's
    /// lookback), so a challenger scored in shadow starts warm on the champion's history.
    /// Kept signals are not copied: they belong to `other`'s model.
    pub fn adopt_series(&mut self, other: &Scorer) {
        let l = self.model.meta.lookback;
        self.series = other
            .series
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.ring.resize(l);
                s.in_batch = false;
                s.sent.clear();
                s
            })
            .collect();
        self.index = other.index.clone();
        self.clock = other.clock;
        self.batch.clear();
    }

    /// Score the current ring of series (`tf`, `symbol_id`) outside the micro-batch (the answer
    /// to a score request): the Signal the newest update of that series would get at `now_ns`.
    pub fn score_current(&mut self, tf: &str, symbol_id: &str, now_ns: i64) -> std::result::Result<Signal, Refusal> {
        let slot = *self.index.get(format!("{tf}.{symbol_id}").as_str()).ok_or(Refusal::UnknownSymbol)?;
        let (l, f) = (self.model.meta.lookback, self.model.meta.n_features());
        let s = &self.series[slot];
        if !s.ring.warm() {
            return Err(Refusal::NotEnoughHistory { have: s.ring.count(), need: l });
        }
        self.one.resize(l * f, 0.0);
        s.ring.copy_window(&mut self.one);
        let probs = self.model.predict(&self.one, 1).map_err(|e| Refusal::ModelError(e.to_string()))?.to_vec();
        let inputs = self.binding.inputs(&self.model.meta, &self.sizing);
        let update =
            UpdateRef { symbol_id: &s.symbol_id, tf: &s.tf, ts: s.last_ts, known_at: s.last_known_at, seq: s.last_seq };
        compute_signal(&probs, &inputs, update, s.ring.last(), true, &self.risk, now_ns, &mut self.scratch)
            .ok_or_else(|| Refusal::ModelError("the model's output is not a distribution".into()))
    }

    /// Check that `model` can replace the champion (same feature set and width, sizing fits).
    pub fn check_compatible(&self, model: &Model) -> Result<()> {
        let (old, new) = (&self.model.meta, &model.meta);
        if new.feature_set != old.feature_set || new.feature_names != old.feature_names {
            return Err(ScorerError::Contract(format!(
                "model {} v{} uses feature set {} ({} features); serving {} ({} features)",
                new.model_name,
                new.model_version,
                new.feature_set,
                new.n_features(),
                old.feature_set,
                old.n_features()
            )));
        }
        Binding::new(new, &self.sizing).map(|_| ())
    }

    /// Replace the champion between batches; rings are kept (resized if L changes).
    pub fn swap_model(&mut self, model: Model) -> Result<Model> {
        if !self.batch.is_empty() {
            return Err(ScorerError::Contract("swap_model called with a batch open; flush first".into()));
        }
        self.check_compatible(&model)?;
        self.binding = Binding::new(&model.meta, &self.sizing)?;
        let l = model.meta.lookback;
        if l != self.model.meta.lookback {
            self.series.iter_mut().for_each(|s| s.ring.resize(l));
            self.input = vec![0.0; self.max_batch * l * model.meta.n_features()];
        }
        Ok(std::mem::replace(&mut self.model, model))
    }

    /// Whether the batch must be flushed before `subject` can be ingested (one update per series
    /// per batch keeps one signal per update).
    pub fn needs_flush(&self, subject: &str) -> bool {
        if self.batch.len() >= self.max_batch {
            return true;
        }
        match series_key(subject).and_then(|k| self.index.get(k)) {
            Some(&slot) => self.series[slot].in_batch,
            None => false,
        }
    }

    /// Validate one raw message and, if good, push it into its ring and the open batch.
    pub fn ingest(&mut self, subject: &str, payload: &[u8], received: Instant) -> std::result::Result<(), Reject> {
        let u = decode(payload)?;
        let meta = &self.model.meta;
        validate(&u, subject, &meta.feature_set, &meta.tf, meta.n_features())?;
        if let Some(now) = self.now_ns {
            if u.ts > now.saturating_add(self.limits.max_future_ns) {
                return Err(Reject::FutureTs);
            }
        }
        let key = series_key(subject).ok_or(Reject::SubjectMismatch)?;
        let slot = match self.index.get(key) {
            Some(&slot) => {
                let s = &self.series[slot];
                if u.seq == s.last_seq {
                    return Err(Reject::Duplicate);
                }
                if u.seq < s.last_seq || u.ts < s.last_ts {
                    return Err(Reject::Late);
                }
                if u.seq > s.last_seq.saturating_add(self.limits.max_seq_jump) {
                    return Err(Reject::SeqJump);
                }
                slot
            }
            None => self.new_slot(key, &u.symbol_id, &u.tf),
        };
        self.clock += 1;
        let s = &mut self.series[slot];
        debug_assert!(!s.in_batch, "needs_flush() must be checked before ingest()");
        s.ring.push(&u.values);
        s.last_seq = u.seq;
        s.last_ts = u.ts;
        s.last_known_at = u.known_at;
        s.in_batch = true;
        s.touched = self.clock;
        self.batch.push(Pending { slot, ts: u.ts, known_at: u.known_at, seq: u.seq, received });
        Ok(())
    }

    /// Score the open batch with the champion and return one signal per update in it.
    pub fn flush(&mut self, now_ns: i64) -> Result<Vec<Scored>> {
        if self.batch.is_empty() {
            return Ok(Vec::new());
        }
        let (l, f) = (self.model.meta.lookback, self.model.meta.n_features());
        let b = self.batch.len();
        for (i, p) in self.batch.iter().enumerate() {
            self.series[p.slot].ring.copy_window(&mut self.input[i * l * f..(i + 1) * l * f]);
        }
        let result = self.model.predict(&self.input, b).map(|probs| probs.to_vec());
        let batch = std::mem::take(&mut self.batch);
        for p in &batch {
            self.series[p.slot].in_batch = false;
        }
        let probs = result?;
        let hk = self.model.meta.horizons.len() * self.model.meta.n_buckets();
        let inputs = self.binding.inputs(&self.model.meta, &self.sizing);
        let mut out = Vec::with_capacity(b);
        for (i, p) in batch.iter().enumerate() {
            let s = &self.series[p.slot];
            let update = UpdateRef { symbol_id: &s.symbol_id, tf: &s.tf, ts: p.ts, known_at: p.known_at, seq: p.seq };
            match compute_signal(
                &probs[i * hk..(i + 1) * hk],
                &inputs,
                update,
                s.ring.last(),
                s.ring.warm(),
                &self.risk,
                now_ns,
                &mut self.scratch,
            ) {
                Some(signal) => out.push(Scored { signal, slot: p.slot, received: p.received }),
                None => self.invalid_outputs += 1,
            }
        }
        self.batch = batch;
        self.batch.clear();
        Ok(out)
    }
}
