//! Signal from bucket probabilities: the mirror of `backtest/signal.py` (DESIGN section 8).
//!
//! Returns are log-returns as fractions. Quantiles read the density as uniform inside a bucket
//! (the CDF is piecewise linear); the direction figures read each bucket as the point mass at its
//! mid r_k, as Kelly sizing does: P(up) is the mass of buckets with r_k > 0, G and L the
//! conditional means above and below zero, and the bucket around zero is flat. The conformal band
//! is the central interval widened by the model's qhat and snapped outward to bucket edges.

use serde::Serialize;

use crate::config::SizingConfig;
use crate::model::ModelMeta;
use crate::sizing::{guard_for, position_size, RiskState};

pub const QUANTILE_LEVELS: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];
pub const SIGNAL_SCHEMA: &str = "signal.v1";
/// A bucket mid within this share of its width from zero is the flat bucket (as in Python).
pub const FLAT_TOLERANCE: f64 = 1e-6;

/// Bucket geometry precomputed once per model (returns, not bps).
#[derive(Debug, Clone)]
pub struct Buckets {
    pub edges: Vec<f64>,
    mid: Vec<f64>,
    /// expm1(mid): the simple return Kelly's 1 + f r needs.
    simple_mid: Vec<f64>,
    width: Vec<f64>,
    /// 1 where the bucket's mid is above zero (the "up" event), else 0.
    up: Vec<f64>,
    /// 1 where the bucket's mid is below zero, else 0.
    dn: Vec<f64>,
    ln_k: f64,
}

impl Buckets {
    pub fn from_bps(edges_bps: &[f64]) -> Self {
        let edges: Vec<f64> = edges_bps.iter().map(|e| e * 1e-4).collect();
        let k = edges.len() - 1;
        let (mut mid, mut width) = (Vec::with_capacity(k), Vec::with_capacity(k));
        let (mut up, mut dn) = (vec![0.0; k], vec![0.0; k]);
        for i in 0..k {
            let (lo, hi) = (edges[i], edges[i + 1]);
            let (m, w) = (0.5 * (lo + hi), hi - lo);
            mid.push(m);
            width.push(w);
            up[i] = if m > FLAT_TOLERANCE * w { 1.0 } else { 0.0 };
            dn[i] = if m < -FLAT_TOLERANCE * w { 1.0 } else { 0.0 };
        }
        let simple_mid = mid.iter().map(|m: &f64| m.exp_m1()).collect();
        Buckets { edges, mid, simple_mid, width, up, dn, ln_k: (k as f64).ln() }
    }

    pub fn k(&self) -> usize {
        self.mid.len()
    }
}

/// Summary of one horizon's distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub prob_up: f64,
    pub mean: f64,
    pub std: f64,
    pub avg_gain: f64,
    pub avg_loss: f64,
    pub conf: f64,
    pub q: [f64; 5],
}

/// Quantile `q` of the piecewise-uniform distribution (`p` normalised, `cdf` its running sum).
pub fn quantile(p: &[f64], cdf: &[f64], b: &Buckets, q: f64) -> f64 {
    let k = cdf.iter().position(|&c| c >= q).unwrap_or(p.len() - 1);
    let c_lo = cdf[k] - p[k];
    if p[k] <= 0.0 {
        return b.edges[k];
    }
    let t = ((q - c_lo) / p[k]).clamp(0.0, 1.0);
    b.edges[k] + t * b.width[k]
}

/// The conformal band [lo - q, hi + q] snapped outward to bucket edges, as
/// `feature_store.discretize.snap_band`: a forecast is known to bucket resolution, and the model's
/// qhat is calibrated for exactly this band. Ends beyond the grid stay; where a negative q crosses
/// the ends, the band is the bucket holding the interval's centre (never empty).
pub fn snap_band(lo: f64, hi: f64, q: f64, edges: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (lo - q, hi + q);
    if a > b {
        let centre = 0.5 * (lo + hi);
        (a, b) = (centre, centre);
    }
    let at_or_below = edges.partition_point(|&e| e <= a); // edges <= a
    let below = edges.partition_point(|&e| e < b); // index of the first edge >= b
    let snapped_lo = if at_or_below == 0 { a } else { edges[at_or_below - 1] };
    let snapped_hi = if below == edges.len() { b } else { edges[below] };
    (snapped_lo, snapped_hi)
}

/// Quantiles at ascending `levels` in one scan of the CDF; equal to calling [`quantile`] per level.
pub fn quantiles_sorted(p: &[f64], cdf: &[f64], b: &Buckets, levels: &[f64], out: &mut [f64]) {
    let last = p.len() - 1;
    let mut k = 0;
    for (o, &q) in out.iter_mut().zip(levels) {
        while k < last && cdf[k] < q {
            k += 1;
        }
        let c_lo = cdf[k] - p[k];
        *o = if p[k] <= 0.0 { b.edges[k] } else { b.edges[k] + ((q - c_lo) / p[k]).clamp(0.0, 1.0) * b.width[k] };
    }
}

/// Summarise one horizon; `p` and `cdf` are scratch buffers of length K (no allocation).
pub fn summarize(probs: &[f32], b: &Buckets, p: &mut [f64], cdf: &mut [f64]) -> Option<Summary> {
    let mut total = 0.0;
    for (dst, &src) in p.iter_mut().zip(probs) {
        let v = src as f64;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        *dst = v;
        total += v;
    }
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let (mut mean, mut m2, mut p_up, mut p_dn, mut g, mut l, mut ent, mut run) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..p.len() {
        let pi = p[i] / total;
        p[i] = pi;
        run += pi;
        cdf[i] = run;
        mean += pi * b.mid[i];
        m2 += pi * b.mid[i] * b.mid[i];
        let up = pi * b.up[i];
        let dn = pi * b.dn[i];
        p_up += up;
        p_dn += dn;
        g += up * b.mid[i];
        l += dn * b.mid[i];
        if pi > 0.0 {
            ent -= pi * pi.ln();
        }
    }
    let mut q = [0.0; 5];
    quantiles_sorted(p, cdf, b, &QUANTILE_LEVELS, &mut q);
    Some(Summary {
        prob_up: p_up,
        mean,
        std: (m2 - mean * mean).max(0.0).sqrt(),
        avg_gain: if p_up > 0.0 { g / p_up } else { 0.0 },
        avg_loss: if p_dn > 0.0 { -l / p_dn } else { 0.0 },
        conf: 1.0 - ent / b.ln_k,
        q,
    })
}

/// sign(gross) * max(|gross| - cost, 0).
pub fn net_of_costs(gross: f64, cost: f64) -> f64 {
    (gross.abs() - cost).max(0.0).copysign(gross) + 0.0
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HorizonSummary {
    pub horizon: i64,
    pub prob_up: f64,
    pub mean: f64,
    pub std: f64,
    pub q05: f64,
    pub q50: f64,
    pub q95: f64,
    pub conf: f64,
}

/// A published Signal (contracts/signal.schema.json).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Signal {
    pub schema: &'static str,
    pub symbol_id: String,
    pub tf: String,
    pub ts: i64,
    pub known_at: i64,
    pub seq: i64,
    pub model: String,
    pub model_version: String,
    pub horizon: i64,
    pub horizon_unit: String,
    pub prob_up: f64,
    pub expected_return: f64,
    pub expected_return_gross: f64,
    pub std: f64,
    pub q05: f64,
    pub q25: f64,
    pub q50: f64,
    pub q75: f64,
    pub q95: f64,
    pub band_lo: f64,
    pub band_hi: f64,
    pub band_alpha: f64,
    pub conf: f64,
    pub avg_gain: f64,
    pub avg_loss: f64,
    pub kelly: f64,
    pub kelly_frac: f64,
    pub vol_scale: Option<f64>,
    pub size: f64,
    pub notional: f64,
    pub capped: Vec<&'static str>,
    pub guard: Option<&'static str>,
    pub distribution: Vec<HorizonSummary>,
    pub published_at: i64,
}

/// Identity of the update a signal answers.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRef<'a> {
    pub symbol_id: &'a str,
    pub tf: &'a str,
    pub ts: i64,
    pub known_at: i64,
    pub seq: i64,
}

/// Scratch buffers reused across signals.
#[derive(Debug, Default)]
pub struct Scratch {
    p: Vec<f64>,
    cdf: Vec<f64>,
    kelly: (Vec<f64>, Vec<f64>),
}

/// Everything the signal needs besides the probabilities.
pub struct SignalInputs<'a> {
    pub meta: &'a ModelMeta,
    pub buckets: &'a Buckets,
    pub cfg: &'a SizingConfig,
    pub horizon_index: usize,
    pub realized_vol_index: Option<usize>,
    pub adv_index: Option<usize>,
}

/// Build the Signal for one update from its (H, K) probabilities (row-major slice).
/// Returns None when the probabilities are not a distribution (model fault).
#[allow(clippy::too_many_arguments)]
pub fn compute_signal(
    probs: &[f32],
    inp: &SignalInputs,
    update: UpdateRef,
    last_features: &[f32],
    warm: bool,
    risk: &RiskState,
    now_ns: i64,
    scratch: &mut Scratch,
) -> Option<Signal> {
    let k = inp.buckets.k();
    let h = inp.meta.horizons.len();
    if probs.len() != h * k {
        return None;
    }
    scratch.p.resize(k, 0.0);
    scratch.cdf.resize(k, 0.0);
    let rv = inp.realized_vol_index.map(|i| last_features[i] as f64);
    let adv = inp.adv_index.map(|i| last_features[i] as f64);
    let guard = guard_for(inp.cfg, risk, update.ts, now_ns, warm);
    let mut distribution = Vec::with_capacity(h);
    let mut chosen = Summary::default();
    let mut band = (0.0, 0.0);
    let mut sized = None;
    let alpha = inp.meta.conformal_alpha;
    for i in 0..h {
        let s = summarize(&probs[i * k..(i + 1) * k], inp.buckets, &mut scratch.p, &mut scratch.cdf)?;
        if i == inp.horizon_index {
            chosen = s;
            let qhat = inp.meta.conformal_qhat_bps[i] * 1e-4;
            band = snap_band(
                quantile(&scratch.p, &scratch.cdf, inp.buckets, alpha / 2.0),
                quantile(&scratch.p, &scratch.cdf, inp.buckets, 1.0 - alpha / 2.0),
                qhat,
                &inp.buckets.edges,
            );
            sized = Some(position_size(
                inp.cfg,
                risk,
                &scratch.p,
                &inp.buckets.simple_mid,
                rv,
                adv,
                guard,
                &mut scratch.kelly,
            ));
        }
        distribution.push(HorizonSummary {
            horizon: inp.meta.horizons[i],
            prob_up: s.prob_up,
            mean: s.mean,
            std: s.std,
            q05: s.q[0],
            q50: s.q[2],
            q95: s.q[4],
            conf: s.conf,
        });
    }
    let sized = sized?;
    let expected = net_of_costs(chosen.mean, inp.cfg.cost());
    let capped = sized.capped;
    Some(Signal {
        schema: SIGNAL_SCHEMA,
        symbol_id: update.symbol_id.to_owned(),
        tf: update.tf.to_owned(),
        ts: update.ts,
        known_at: update.known_at,
        seq: update.seq,
        model: inp.meta.model_name.clone(),
        model_version: inp.meta.model_version.clone(),
        horizon: inp.cfg.horizon,
        horizon_unit: inp.meta.horizon_unit.clone(),
        prob_up: chosen.prob_up,
        expected_return: expected,
        expected_return_gross: chosen.mean,
        std: chosen.std,
        q05: chosen.q[0],
        q25: chosen.q[1],
        q50: chosen.q[2],
        q75: chosen.q[3],
        q95: chosen.q[4],
        band_lo: band.0,
        band_hi: band.1,
        band_alpha: alpha,
        conf: chosen.conf,
        avg_gain: chosen.avg_gain,
        avg_loss: chosen.avg_loss,
        kelly: sized.kelly,
        kelly_frac: sized.kelly_frac,
        vol_scale: sized.vol_scale,
        size: sized.size,
        notional: sized.notional,
        capped,
        guard: sized.guard,
        distribution,
        published_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_quantiles_equal_single_quantiles() {
        let b = Buckets::from_bps(&[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        let raw = [0.0f32, 0.3, 0.0, 0.5, 0.2];
        let (mut p, mut cdf) = (vec![0.0; 5], vec![0.0; 5]);
        let s = summarize(&raw, &b, &mut p, &mut cdf).unwrap();
        for (i, level) in QUANTILE_LEVELS.iter().enumerate() {
            assert_eq!(s.q[i], quantile(&p, &cdf, &b, *level));
        }
        assert!((s.prob_up - 0.7).abs() < 1e-6, "{}", s.prob_up);
        // the bucket around zero is flat: its mass is neither up nor down
        let zb = Buckets::from_bps(&[-1.5, -0.5, 0.5, 1.5]);
        let (mut p3, mut c3) = (vec![0.0; 3], vec![0.0; 3]);
        let z = summarize(&[0.2f32, 0.5, 0.3], &zb, &mut p3, &mut c3).unwrap();
        assert!((z.prob_up - 0.3).abs() < 1e-7, "{}", z.prob_up);
        assert!((z.avg_gain - 1e-4).abs() < 1e-12 && (z.avg_loss - 1e-4).abs() < 1e-12);
        assert!(summarize(&[0.0; 5], &b, &mut p, &mut cdf).is_none());
        assert!(summarize(&[f32::NAN, 1.0, 0.0, 0.0, 0.0], &b, &mut p, &mut cdf).is_none());
    }

    #[test]
    fn bands_snap_outward_to_bucket_edges_and_are_never_empty() {
        let edges = [-1.5, -0.5, 0.5, 1.5];
        assert_eq!(snap_band(-0.2, 0.3, 0.1, &edges), (-0.5, 0.5));
        assert_eq!(snap_band(-0.2, 0.3, 0.4, &edges), (-1.5, 1.5));
        assert_eq!(snap_band(-0.2, 0.3, -2.0, &edges), (-0.5, 0.5)); // crossed: the centre's bucket
        assert_eq!(snap_band(-0.5, 0.5, 0.0, &edges), (-0.5, 0.5)); // on an edge stays there
        assert_eq!(snap_band(-1.0, 1.0, 1.0, &edges), (-2.0, 2.0)); // beyond the grid stays
    }

    #[test]
    fn costs_shrink_the_edge_towards_zero_never_past_it() {
        assert!((net_of_costs(3e-4, 1e-4) - 2e-4).abs() < 1e-18);
        assert!((net_of_costs(-3e-4, 1e-4) + 2e-4).abs() < 1e-18);
        assert_eq!(net_of_costs(5e-5, 1e-4), 0.0);
        assert!(net_of_costs(-5e-5, 1e-4).is_sign_positive());
    }
}
