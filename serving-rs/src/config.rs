//! Sizing configuration (contracts/sizing.json), shared with `backtest/sizing.py`.

use serde::Deserialize;
use std::path::Path;

use crate::error::{read_file, Result, ScorerError};

/// Sizing parameters; contracts/sizing.schema.json documents each field. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizingConfig {
    pub horizon: i64,
    pub kelly_alpha: f64,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub target_vol: f64,
    pub realized_vol_feature: Option<String>,
    pub max_vol_scale: f64,
    pub max_nav_frac: f64,
    pub adv_feature: Option<String>,
    pub max_adv_share: f64,
    pub nav: f64,
    pub max_intraday_drawdown: f64,
    pub max_staleness_ms: i64,
}

impl SizingConfig {
    /// Per-trade cost (fees + slippage) as a return.
    pub fn cost(&self) -> f64 {
        (self.fee_bps + self.slippage_bps) * 1e-4
    }

    /// Parse and check a JSON value (e.g. a golden case's `sizing`).
    pub fn from_json(value: serde_json::Value, source: &str) -> Result<Self> {
        let cfg: SizingConfig = serde_json::from_value(value)
            .map_err(|e| ScorerError::Config { path: source.into(), message: e.to_string() })?;
        cfg.check(source)?;
        Ok(cfg)
    }

    /// Read the JSON sizing config.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_file(path)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScorerError::Config { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_json(value, &path.display().to_string())
    }

    fn check(&self, source: &str) -> Result<()> {
        let positives = [
            ("kelly_alpha", self.kelly_alpha), ("target_vol", self.target_vol),
            ("max_vol_scale", self.max_vol_scale), ("max_nav_frac", self.max_nav_frac),
            ("max_adv_share", self.max_adv_share), ("nav", self.nav),
            ("max_intraday_drawdown", self.max_intraday_drawdown),
        ];
        for (name, v) in positives {
            if !(v > 0.0) || !v.is_finite() {
                return Err(ScorerError::Config { path: source.into(), message: format!("{name} must be a positive number") });
            }
        }
        Ok(())
    }
}
