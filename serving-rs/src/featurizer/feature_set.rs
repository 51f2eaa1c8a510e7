//! The feature set the featurizer computes, embedded from `contracts/feature_sets/tick_v2.json`.
//!
//! That file is generated from the Python registry (`feature_store/feature_contract.py`; a Python
//! test fails when it drifts), so the feature order, kinds, windows, parameters, tolerances and the
//! version hash are read here, never copied by hand.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Result, ScorerError};

/// The contract file as it was when this crate was built.
pub const TICK_V2_SOURCE: &str = include_str!("../../../contracts/feature_sets/tick_v2.json");

/// The parsed embedded `tick_v2` (a unit test parses it, so a bad file fails `cargo test`).
pub static TICK_V2: LazyLock<FeatureSet> = LazyLock::new(|| {
    FeatureSet::parse(TICK_V2_SOURCE)
        .unwrap_or_else(|e| panic!("contracts/feature_sets/tick_v2.json embedded at build time: {e}"))
});

/// What a feature computes (the registry's `params.kind` with its parameters).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Log return of the last trade over `n` seconds.
    Ret {
        n: usize,
    },
    TickImb {
        w: usize,
    },
    QuoteImb {
        w: usize,
    },
    LogSizeMean {
        w: usize,
    },
    LogSizeStd {
        w: usize,
    },
    BlockShare {
        w: usize,
        block_size: f64,
    },
    TradeRate {
        w: usize,
    },
    QuoteRate {
        w: usize,
    },
    LogVolume {
        w: usize,
    },
    SpreadBps,
    MicropriceBps,
    BookImbalance,
    MidRv {
        w: usize,
        year_seconds: f64,
    },
    SecsSinceOpen,
    SecsToClose,
}

/// One registered feature.
#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub kind: Kind,
    /// The largest |stream - batch| error allowed (relative for large values, see the registry).
    pub stream_tolerance: f64,
}

/// A feature set: name, timeframe, version hash, constants and features in the registry's order.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub name: String,
    pub tf: String,
    pub version: String,
    pub default_calendar: String,
    pub var_snap: f64,
    pub features: Vec<Feature>,
}

#[derive(Deserialize)]
struct RawSet {
    name: String,
    tf: String,
    version: String,
    constants: RawConstants,
    features: Vec<RawFeature>,
}

#[derive(Deserialize)]
struct RawConstants {
    default_calendar: String,
    second_closes: String,
    ts_unit: String,
    var_snap: f64,
}

#[derive(Deserialize)]
struct RawFeature {
    name: String,
    index: usize,
    dtype: String,
    params: Map<String, Value>,
    stream_tolerance: f64,
}

fn int(params: &Map<String, Value>, feature: &str, key: &str) -> std::result::Result<usize, String> {
    params
        .get(key)
        .and_then(Value::as_u64)
        .filter(|v| *v > 0)
        .map(|v| v as usize)
        .ok_or_else(|| format!("feature {feature}: params.{key} must be a positive integer"))
}

fn float(params: &Map<String, Value>, feature: &str, key: &str) -> std::result::Result<f64, String> {
    params
        .get(key)
        .and_then(Value::as_f64)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| format!("feature {feature}: params.{key} must be a positive number"))
}

fn kind(name: &str, p: &Map<String, Value>) -> std::result::Result<Kind, String> {
    let k = p.get("kind").and_then(Value::as_str).ok_or_else(|| format!("feature {name}: params.kind missing"))?;
    let w = || int(p, name, "w");
    Ok(match k {
        "ret" => Kind::Ret { n: int(p, name, "n")? },
        "tick_imb" => Kind::TickImb { w: w()? },
        "quote_imb" => Kind::QuoteImb { w: w()? },
        "log_size_mean" => Kind::LogSizeMean { w: w()? },
        "log_size_std" => Kind::LogSizeStd { w: w()? },
        "block_share" => Kind::BlockShare { w: w()?, block_size: float(p, name, "block_size")? },
        "trade_rate" => Kind::TradeRate { w: w()? },
        "quote_rate" => Kind::QuoteRate { w: w()? },
        "log_volume" => Kind::LogVolume { w: w()? },
        "spread_bps" => Kind::SpreadBps,
        "microprice_bps" => Kind::MicropriceBps,
        "book_imbalance" => Kind::BookImbalance,
        "mid_rv" => Kind::MidRv { w: w()?, year_seconds: float(p, name, "year_seconds")? },
        "secs_since_open" => Kind::SecsSinceOpen,
        "secs_to_close" => Kind::SecsToClose,
        other => return Err(format!("feature {name}: no incremental formula for kind {other:?}")),
    })
}

impl FeatureSet {
    /// Parse and check a feature-set contract (order, dtype, units, every kind known).
    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawSet = serde_json::from_str(text)
            .map_err(|source| ScorerError::Json { what: "feature set contract".into(), source })?;
        let bad = |message: String| ScorerError::Config { path: format!("feature set {}", raw.name), message };
        if raw.constants.ts_unit != "ns" || raw.constants.second_closes != "(s-1, s]" {
            return Err(bad(format!(
                "constants ts_unit {:?} / second_closes {:?}: this featurizer implements ns and (s-1, s]",
                raw.constants.ts_unit, raw.constants.second_closes
            )));
        }
        if raw.features.is_empty() {
            return Err(bad("no features".into()));
        }
        let mut features = Vec::with_capacity(raw.features.len());
        for (i, f) in raw.features.iter().enumerate() {
            if f.index != i {
                return Err(bad(format!("feature {} has index {} at position {i}", f.name, f.index)));
            }
            if f.dtype != "float64" {
                return Err(bad(format!("feature {}: dtype {} (only float64 streams)", f.name, f.dtype)));
            }
            let kind = kind(&f.name, &f.params).map_err(bad)?;
            features.push(Feature { name: f.name.clone(), kind, stream_tolerance: f.stream_tolerance });
        }
        Ok(FeatureSet {
            name: raw.name,
            tf: raw.tf,
            version: raw.version,
            default_calendar: raw.constants.default_calendar,
            var_snap: raw.constants.var_snap,
            features,
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.features.iter().map(|f| f.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tick_v2_parses_in_registry_order() {
        let fs = &*TICK_V2;
        assert_eq!(fs.name, "tick_v2");
        assert_eq!(fs.tf, "1s");
        assert_eq!(fs.features.len(), 28);
        assert_eq!(fs.features[0].kind, Kind::Ret { n: 1 });
        assert_eq!(fs.features.last().map(|f| f.kind.clone()), Some(Kind::SecsToClose));
        assert!(fs.features.iter().all(|f| f.stream_tolerance > 0.0));
    }

    #[test]
    fn an_unknown_kind_or_a_reordered_feature_is_refused() {
        let unknown = TICK_V2_SOURCE.replacen("\"kind\": \"ret\"", "\"kind\": \"retx\"", 1);
        let err = FeatureSet::parse(&unknown).unwrap_err().to_string();
        assert!(err.contains("retx"), "{err}");
        let reordered = TICK_V2_SOURCE.replacen("\"index\": 0", "\"index\": 5", 1);
        assert!(FeatureSet::parse(&reordered).unwrap_err().to_string().contains("index 5"));
    }
}
