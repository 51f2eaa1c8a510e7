//! Position sizing from a return distribution: the mirror of `backtest/sizing.py` (DESIGN section 8).
//!
//! 1. Kelly exposure f* = argmax_f sum_k p_k log(1 + f (r_k - c sign f)) by safeguarded Newton
//!    steps (0 when neither side beats the cost c; |f*| <= kelly_max);
//! 2. exposure = sign(f*) min(alpha |f*|, vol cap, max NAV per symbol, ADV cap), the vol cap being
//!    min(target_vol / realized_vol, max_vol_scale): vol targeting caps, it does not multiply;
//! 3. guards cut the size to 0 (drawdown kill switch from the published risk state, stale, warm-up).
//!
//! Keep in step with Python: the golden vectors in contracts/golden/ hold both to 1e-6, and
//! contracts/golden/kelly.json holds both to scipy's optimum to 1e-9.

use crate::config::SizingConfig;

pub const GUARD_DRAWDOWN: &str = "drawdown_kill";
pub const GUARD_STALE: &str = "stale";
pub const GUARD_WARMUP: &str = "warmup";
const NEWTON_MAX_STEPS: usize = 100;
const NEWTON_RTOL: f64 = 1e-15;

/// Portfolio state the guards read (contracts/risk_state.schema.json, less its ts).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskState {
    pub nav: f64,
    #[serde(default)]
    pub intraday_drawdown: f64,
    #[serde(default)]
    pub kill: bool,
}

/// A risk state message as published (every field required, checked against the schema first).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskMessage {
    pub ts: i64,
    pub nav: f64,
    pub intraday_drawdown: f64,
    pub kill: bool,
}

/// contracts/risk_state.schema.json as it was at build time.
pub const RISK_SCHEMA: &str = include_str!("../../contracts/risk_state.schema.json");

/// Decode and check a risk state message; the error names every violation.
pub fn decode_risk(payload: &[u8]) -> Result<RiskState, String> {
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let schema: serde_json::Value = serde_json::from_str(RISK_SCHEMA).map_err(|e| e.to_string())?;
    let problems = crate::schema::errors(&value, &schema);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let m: RiskMessage = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(RiskState { nav: m.nav, intraday_drawdown: m.intraday_drawdown, kill: m.kill })
}

/// Sized position for one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeResult {
    pub kelly: f64,
    pub kelly_frac: f64,
    pub vol_scale: Option<f64>,
    pub size: f64,
    pub notional: f64,
    pub capped: Vec<&'static str>,
    pub guard: Option<&'static str>,
}

/// First and second derivative of sum p log(1 + h a) at h (only the live outcomes).
fn growth_slope(p: &[f64], a: &[f64], h: f64) -> (f64, f64) {
    let (mut d1, mut d2) = (0.0, 0.0);
    for (&pk, &ak) in p.iter().zip(a) {
        let q = ak / (1.0 + h * ak);
        d1 += pk * q;
        d2 += pk * q * q;
    }
    (d1, -d2)
}

/// f* = argmax_f sum_k p_k log(1 + f (r_k - c sign f)), signed, |f*| <= kelly_max; `scratch`
/// holds the live outcomes. Same steps as `backtest/sizing.py::kelly_exposure`.
pub fn kelly_exposure(
    p: &[f64],
    returns: &[f64],
    cost: f64,
    kelly_max: f64,
    scratch: &mut (Vec<f64>, Vec<f64>),
) -> f64 {
    let (prob, a) = scratch;
    prob.clear();
    a.clear();
    let mut mean = 0.0;
    for (&pk, &rk) in p.iter().zip(returns) {
        if pk > 0.0 {
            prob.push(pk);
            a.push(rk);
            mean += pk * rk;
        }
    }
    let side = if mean > cost {
        a.iter_mut().for_each(|x| *x -= cost);
        1.0
    } else if mean < -cost {
        a.iter_mut().for_each(|x| *x = -(*x + cost));
        -1.0
    } else {
        return 0.0;
    };
    let worst = a.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = if worst < 0.0 { (-1.0 / worst).min(kelly_max) } else { kelly_max };
    if hi == kelly_max && (worst >= 0.0 || kelly_max < -1.0 / worst) && growth_slope(prob, a, hi).0 >= 0.0 {
        return side * kelly_max;
    }
    let (mut lo, mut h) = (0.0, 0.0);
    for _ in 0..NEWTON_MAX_STEPS {
        let (d1, d2) = growth_slope(prob, a, h);
        if d1 == 0.0 {
            break;
        }
        if d1 > 0.0 {
            lo = h;
        } else {
            hi = h;
        }
        let mut next = if d2 < 0.0 { h - d1 / d2 } else { 0.5 * (lo + hi) };
        if !(lo < next && next < hi) {
            next = 0.5 * (lo + hi);
        }
        let done = (next - h).abs() <= NEWTON_RTOL * h.max(1.0);
        h = next;
        if done {
            break;
        }
    }
    side * h
}

/// min(target_vol / realized_vol, max_vol_scale); None when vol targeting is off.
pub fn vol_cap(cfg: &SizingConfig, realized_vol: Option<f64>) -> Option<f64> {
    match realized_vol {
        None => None,
        Some(rv) if rv <= 0.0 || !rv.is_finite() => Some(cfg.max_vol_scale),
        Some(rv) => Some((cfg.target_vol / rv).min(cfg.max_vol_scale)),
    }
}

/// The guard that cuts the size to zero, if any (most severe first).
pub fn guard_for(cfg: &SizingConfig, risk: &RiskState, ts_ns: i64, now_ns: i64, warm: bool) -> Option<&'static str> {
    if risk.kill || risk.intraday_drawdown >= cfg.max_intraday_drawdown {
        return Some(GUARD_DRAWDOWN);
    }
    if cfg.max_staleness_ms > 0 && now_ns.saturating_sub(ts_ns) > cfg.max_staleness_ms.saturating_mul(1_000_000) {
        return Some(GUARD_STALE);
    }
    if !warm {
        return Some(GUARD_WARMUP);
    }
    None
}

/// Size one position from the horizon's bucket probabilities and simple mid returns.
#[allow(clippy::too_many_arguments)] // mirrors the Python signature field for field
pub fn position_size(
    cfg: &SizingConfig,
    risk: &RiskState,
    probs: &[f64],
    returns: &[f64],
    realized_vol: Option<f64>,
    adv_notional: Option<f64>,
    guard: Option<&'static str>,
    scratch: &mut (Vec<f64>, Vec<f64>),
) -> SizeResult {
    let kelly = kelly_exposure(probs, returns, cfg.cost(), cfg.kelly_max, scratch);
    let kelly_frac = cfg.kelly_alpha * kelly;
    let want = kelly_frac.abs();
    let vol = vol_cap(cfg, realized_vol);
    let mut caps: Vec<(&'static str, f64)> = Vec::with_capacity(3);
    if let Some(v) = vol {
        caps.push(("vol", v));
    }
    caps.push(("nav", cfg.max_nav_frac));
    if let Some(adv) = adv_notional {
        let adv = if adv.is_finite() && adv > 0.0 { adv } else { 0.0 };
        caps.push(("adv", cfg.max_adv_share * adv / risk.nav));
    }
    let capped =
        if kelly != 0.0 { caps.iter().filter(|(_, c)| *c < want).map(|(n, _)| *n).collect() } else { Vec::new() };
    let mut size = if kelly != 0.0 { caps.iter().fold(want, |m, (_, c)| m.min(*c)).copysign(kelly) } else { 0.0 };
    if guard.is_some() {
        size = 0.0;
    }
    size += 0.0; // normalise -0.0 as Python does
    SizeResult { kelly, kelly_frac, vol_scale: vol, size, notional: size * risk.nav, capped, guard }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_point_kelly_is_p_over_l_minus_q_over_g() {
        let mut s = Default::default();
        let (p, g, l) = (0.6, 0.01, 0.008);
        let f = kelly_exposure(&[p, 1.0 - p], &[g, -l], 0.0, 1e6, &mut s);
        assert!((f - (p / l - (1.0 - p) / g)).abs() < 1e-9, "{f}");
        let f = kelly_exposure(&[0.4, 0.6], &[g, -l], 0.0, 1e6, &mut s);
        assert!((f + (0.6 / g - 0.4 / l)).abs() < 1e-9, "{f}");
        assert_eq!(kelly_exposure(&[0.5, 0.5], &[1e-3, -1e-3], 0.0, 100.0, &mut s), 0.0);
        assert_eq!(kelly_exposure(&[0.5, 0.5], &[1e-3, 2e-3], 0.0, 100.0, &mut s), 100.0);
        // costs can remove the edge on both sides
        assert_eq!(kelly_exposure(&[0.6, 0.4], &[g, -l], 0.01, 1e6, &mut s), 0.0);
    }

    #[test]
    fn risk_messages_are_checked() {
        assert!(decode_risk(br#"{"ts": 1, "nav": 1e6, "intraday_drawdown": 0.01, "kill": false}"#).is_ok());
        assert!(decode_risk(br#"{"ts": 1, "nav": 1e6, "intraday_drawdown": 0.01}"#).is_err());
        assert!(decode_risk(br#"{"ts": 1, "nav": -1, "intraday_drawdown": 0.01, "kill": false}"#).is_err());
        assert!(decode_risk(b"{not json").is_err());
    }
}
