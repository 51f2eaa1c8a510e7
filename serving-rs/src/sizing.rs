//! Position sizing from a distribution summary: the mirror of `backtest/sizing.py`.
//!
//! Fractional Kelly -> zero when costs eat the edge -> vol-target scaling -> caps (NAV per symbol,
//! ADV share) -> guards (drawdown kill switch, stale data, warm-up). Keep in step with Python;
//! the golden vectors in contracts/golden/ hold both to 1e-6.

use crate::config::SizingConfig;

pub const GUARD_DRAWDOWN: &str = "drawdown_kill";
pub const GUARD_STALE: &str = "stale";
pub const GUARD_WARMUP: &str = "warmup";

/// Portfolio state the sizing needs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskState {
    pub nav: f64,
    #[serde(default)]
    pub intraday_drawdown: f64,
}

/// Sized position for one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeResult {
    pub kelly: f64,
    pub kelly_frac: f64,
    pub vol_scale: f64,
    pub size: f64,
    pub notional: f64,
    pub capped_nav: bool,
    pub capped_adv: bool,
    pub guard: Option<&'static str>,
}

/// Signed Kelly fraction: f* = p - (1 - p) / (G / L) long, its mirror short, else 0.
pub fn kelly_fraction(p_up: f64, gain: f64, loss: f64) -> f64 {
    let has_gain = gain > 0.0;
    let has_loss = loss > 0.0;
    if !has_gain && !has_loss {
        return 0.0;
    }
    if !has_loss {
        return p_up;
    }
    if !has_gain {
        return -(1.0 - p_up);
    }
    let b = gain / loss;
    let f_long = p_up - (1.0 - p_up) / b;
    if f_long > 0.0 {
        return f_long;
    }
    let f_short = (1.0 - p_up) - p_up * b;
    if f_short > 0.0 {
        return -f_short;
    }
    0.0
}

/// target_vol / realized_vol capped at max_vol_scale; 1 when vol targeting is off (None).
pub fn vol_scale(cfg: &SizingConfig, realized_vol: Option<f64>) -> f64 {
    match realized_vol {
        None => 1.0,
        Some(rv) if !(rv > 0.0) || !rv.is_finite() => cfg.max_vol_scale,
        Some(rv) => (cfg.target_vol / rv).min(cfg.max_vol_scale),
    }
}

/// The guard that cuts the size to zero, if any (most severe first).
pub fn guard_for(cfg: &SizingConfig, risk: &RiskState, ts_ns: i64, now_ns: i64, warm: bool) -> Option<&'static str> {
    if risk.intraday_drawdown >= cfg.max_intraday_drawdown {
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

/// Size one position from its distribution summary (returns as fractions).
#[allow(clippy::too_many_arguments)]
pub fn position_size(
    cfg: &SizingConfig, risk: &RiskState, prob_up: f64, gain: f64, loss: f64, expected_return: f64,
    realized_vol: Option<f64>, adv_notional: Option<f64>, guard: Option<&'static str>,
) -> SizeResult {
    let kelly = kelly_fraction(prob_up, gain, loss);
    let kelly_frac = cfg.kelly_alpha * kelly;
    let scale = vol_scale(cfg, realized_vol);
    let mut size = if expected_return != 0.0 { kelly_frac * scale } else { 0.0 };
    let mut capped_nav = false;
    let mut capped_adv = false;
    if size.abs() > cfg.max_nav_frac {
        size = cfg.max_nav_frac.copysign(size);
        capped_nav = true;
    }
    if let Some(adv) = adv_notional {
        let adv_cap = cfg.max_adv_share * adv.max(0.0) / risk.nav;
        if size.abs() > adv_cap {
            size = adv_cap.copysign(size);
            capped_adv = true;
        }
    }
    if guard.is_some() {
        size = 0.0;
    }
    size += 0.0; // normalise -0.0 as Python does
    SizeResult { kelly, kelly_frac, vol_scale: scale, size, notional: size * risk.nav, capped_nav, capped_adv, guard }
}
