//! Sizing configuration (contracts/sizing.json), shared with `backtest/sizing.py`.

use serde::Deserialize;
use std::path::Path;

use crate::error::{read_file, Result, ScorerError};
use crate::schema;

/// contracts/sizing.schema.json as it was at build time.
pub const SCHEMA: &str = include_str!("../../contracts/sizing.schema.json");
/// contracts/sizing.json as it was at build time: the default when no --sizing is given.
pub const DEFAULT: &str = include_str!("../../contracts/sizing.json");

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
    pub kelly_max: f64,
}

impl SizingConfig {
    /// Cost c charged against each bet (fees + slippage) as a return.
    pub fn cost(&self) -> f64 {
        (self.fee_bps + self.slippage_bps) * 1e-4
    }

    /// Check a JSON value against contracts/sizing.schema.json (embedded at build time, the rules
    /// `backtest/sizing.py` applies through `feature_store/schema_check.py`), then parse it.
    pub fn from_json(value: serde_json::Value, source: &str) -> Result<Self> {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA)
            .map_err(|e| ScorerError::Config { path: "sizing.schema.json".into(), message: e.to_string() })?;
        let problems = schema::errors(&value, &schema);
        if !problems.is_empty() {
            return Err(ScorerError::Config { path: source.into(), message: problems.join("; ") });
        }
        serde_json::from_value(value).map_err(|e| ScorerError::Config { path: source.into(), message: e.to_string() })
    }

    /// The sizing config embedded at build time.
    pub fn embedded() -> Result<Self> {
        let value = serde_json::from_str(DEFAULT)
            .map_err(|e| ScorerError::Config { path: "contracts/sizing.json".into(), message: e.to_string() })?;
        Self::from_json(value, "contracts/sizing.json (embedded)")
    }

    /// Read the JSON sizing config.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_file(path)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScorerError::Config { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_json(value, &path.display().to_string())
    }
}
