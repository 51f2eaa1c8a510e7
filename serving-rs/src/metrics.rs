//! Prometheus metrics: counters, a latency histogram and the serving model, lock-free on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::contract::Reject;

/// Upper bounds (seconds) of the receive -> publish latency histogram.
pub const LATENCY_BUCKETS: [f64; 16] =
    [25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0];

#[derive(Default)]
pub struct Metrics {
    pub updates: AtomicU64,
    pub signals: AtomicU64,
    pub batches: AtomicU64,
    pub model_swaps: AtomicU64,
    pub model_rejects: AtomicU64,
    pub model_errors: AtomicU64,
    pub publish_errors: AtomicU64,
    pub publish_retries: AtomicU64,
    pub resent: AtomicU64,
    pub redelivered_skipped: AtomicU64,
    pub risk_states: AtomicU64,
    pub evictions: AtomicU64,
    pub series: AtomicU64,
    pub score_requests: AtomicU64,
    pub score_refusals: AtomicU64,
    pub shadow_signals: AtomicU64,
    pub challenger_swaps: AtomicU64,
    pub nats_connected: std::sync::atomic::AtomicBool,
    deadletters: [AtomicU64; Reject::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
    latency_count: AtomicU64,
    model: Mutex<(String, String, String)>,
    challenger: Mutex<Option<(String, String, String)>>,
    pub ready: std::sync::atomic::AtomicBool,
}

impl Metrics {
    pub fn deadletter(&self, reason: Reject) {
        self.deadletters[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn deadletters(&self, reason: Reject) -> u64 {
        self.deadletters[reason.index()].load(Relaxed)
    }

    pub fn observe_latency_ns(&self, ns: u64) {
        let secs = ns as f64 * 1e-9;
        let i = LATENCY_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[i].fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(ns, Relaxed);
        self.latency_count.fetch_add(1, Relaxed);
    }

    pub fn set_model(&self, name: &str, version: &str, sha256: &str) {
        *self.model.lock().unwrap_or_else(|e| e.into_inner()) = (name.into(), version.into(), sha256.into());
    }

    pub fn model(&self) -> (String, String, String) {
        self.model.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The challenger scored in shadow (name, version, sha256), or None.
    pub fn set_challenger(&self, challenger: Option<(&str, &str, &str)>) {
        *self.challenger.lock().unwrap_or_else(|e| e.into_inner()) =
            challenger.map(|(n, v, s)| (n.to_owned(), v.to_owned(), s.to_owned()));
    }

    pub fn challenger(&self) -> Option<(String, String, String)> {
        self.challenger.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Render the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n");
        };
        counter(&mut s, "mps_scorer_updates_total", "FeatureUpdates received", self.updates.load(Relaxed));
        counter(&mut s, "mps_scorer_signals_total", "Signals published", self.signals.load(Relaxed));
        counter(&mut s, "mps_scorer_batches_total", "model calls (micro-batches)", self.batches.load(Relaxed));
        counter(&mut s, "mps_scorer_model_swaps_total", "champion swaps", self.model_swaps.load(Relaxed));
        counter(
            &mut s,
            "mps_scorer_model_rejects_total",
            "candidate models refused (checksum, golden, contract)",
            self.model_rejects.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_model_errors_total",
            "model calls or outputs that failed",
            self.model_errors.load(Relaxed),
        );
        counter(&mut s, "mps_scorer_publish_errors_total", "publishes that failed", self.publish_errors.load(Relaxed));
        counter(
            &mut s,
            "mps_scorer_publish_retries_total",
            "JetStream publishes retried until acked",
            self.publish_retries.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_resent_total",
            "signals re-sent for redelivered updates already scored",
            self.resent.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_redelivered_skipped_total",
            "redelivered updates already scored whose signal was no longer kept (acked, already in JetStream)",
            self.redelivered_skipped.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_score_requests_total",
            "score requests answered (Signal or typed refusal)",
            self.score_requests.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_score_refusals_total",
            "score requests answered with a typed refusal",
            self.score_refusals.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_shadow_signals_total",
            "challenger Signals published on the shadow subject",
            self.shadow_signals.load(Relaxed),
        );
        counter(
            &mut s,
            "mps_scorer_challenger_swaps_total",
            "challengers started or stopped in shadow",
            self.challenger_swaps.load(Relaxed),
        );
        counter(&mut s, "mps_scorer_risk_states_total", "risk states applied", self.risk_states.load(Relaxed));
        counter(
            &mut s,
            "mps_scorer_evictions_total",
            "series evicted at the per-symbol state cap",
            self.evictions.load(Relaxed),
        );
        let _ = write!(
            s,
            "# HELP mps_scorer_series series held\n# TYPE mps_scorer_series gauge\nmps_scorer_series {}\n",
            self.series.load(Relaxed)
        );
        let up = u8::from(self.nats_connected.load(Relaxed));
        let _ = write!(s, "# HELP mps_scorer_nats_connected 1 while connected to NATS\n# TYPE mps_scorer_nats_connected gauge\nmps_scorer_nats_connected {up}\n");
        s.push_str("# HELP mps_scorer_deadletters_total bad messages sent to deadletter.>\n# TYPE mps_scorer_deadletters_total counter\n");
        for r in Reject::ALL {
            let _ = writeln!(s, "mps_scorer_deadletters_total{{reason=\"{}\"}} {}", r.as_str(), self.deadletters(r));
        }
        s.push_str("# HELP mps_scorer_latency_seconds receive -> publish latency per update\n# TYPE mps_scorer_latency_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cum += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(s, "mps_scorer_latency_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.latency_buckets[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(s, "mps_scorer_latency_seconds_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(s, "mps_scorer_latency_seconds_sum {}", self.latency_sum_ns.load(Relaxed) as f64 * 1e-9);
        let _ = writeln!(s, "mps_scorer_latency_seconds_count {}", self.latency_count.load(Relaxed));
        let (name, version, sha) = self.model();
        let _ = write!(
            s,
            "# HELP mps_scorer_model_info serving champion\n# TYPE mps_scorer_model_info gauge\nmps_scorer_model_info{{model=\"{name}\",version=\"{version}\",sha256=\"{sha}\"}} 1\n"
        );
        if let Some((name, version, sha)) = self.challenger() {
            let _ = write!(
                s,
                "# HELP mps_scorer_challenger_info challenger scored in shadow\n# TYPE mps_scorer_challenger_info gauge\nmps_scorer_challenger_info{{model=\"{name}\",version=\"{version}\",sha256=\"{sha}\"}} 1\n"
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::default();
        m.updates.fetch_add(3, Relaxed);
        m.deadletter(Reject::NonFinite);
        m.observe_latency_ns(40_000);
        m.observe_latency_ns(2_000_000_000);
        m.set_model("tick_tiny", "2", "ab");
        let text = m.render();
        assert!(text.contains("mps_scorer_updates_total 3"));
        assert!(text.contains("mps_scorer_deadletters_total{reason=\"non_finite\"} 1"));
        assert!(text.contains("mps_scorer_latency_seconds_bucket{le=\"0.00005\"} 1"));
        assert!(text.contains("mps_scorer_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("mps_scorer_model_info{model=\"tick_tiny\",version=\"2\",sha256=\"ab\"} 1"));
    }
}
