//! FeatureUpdate messages (contracts/feature_update.schema.json) and why one is rejected.

use serde::Deserialize;
use std::borrow::Cow;

use crate::streaming::STREAMING;

/// One feature vector of one symbol at one step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureUpdate<'a> {
    #[serde(borrow)]
    pub symbol_id: Cow<'a, str>,
    #[serde(borrow)]
    pub tf: Cow<'a, str>,
    pub ts: i64,
    pub known_at: i64,
    #[serde(borrow)]
    pub feature_set: Cow<'a, str>,
    pub values: Vec<f64>,
    pub seq: i64,
}

/// Why a message went to the dead-letter subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    MalformedJson,
    NonFinite,
    SubjectMismatch,
    WrongFeatureSet,
    WrongLength,
    Duplicate,
    Late,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::MalformedJson, Reject::NonFinite, Reject::SubjectMismatch, Reject::WrongFeatureSet,
        Reject::WrongLength, Reject::Duplicate, Reject::Late,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MalformedJson => "malformed_json",
            Reject::NonFinite => "non_finite",
            Reject::SubjectMismatch => "subject_mismatch",
            Reject::WrongFeatureSet => "wrong_feature_set",
            Reject::WrongLength => "wrong_length",
            Reject::Duplicate => "duplicate",
            Reject::Late => "late",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Decode a FeatureUpdate; JSON NaN/Infinity tokens (which strict JSON forbids) count as non-finite.
pub fn decode(payload: &[u8]) -> Result<FeatureUpdate<'_>, Reject> {
    match serde_json::from_slice::<FeatureUpdate>(payload) {
        Ok(u) => Ok(u),
        Err(_) => {
            let text = String::from_utf8_lossy(payload);
            if text.contains("NaN") || text.contains("Infinity") {
                Err(Reject::NonFinite)
            } else {
                Err(Reject::MalformedJson)
            }
        }
    }
}

/// Check what can be checked without per-symbol state.
pub fn validate(u: &FeatureUpdate, subject: &str, feature_set: &str, n_features: usize) -> Result<(), Reject> {
    if u.feature_set != feature_set {
        return Err(Reject::WrongFeatureSet);
    }
    if u.values.len() != n_features {
        return Err(Reject::WrongLength);
    }
    if u.values.iter().any(|v| !v.is_finite() || !((*v as f32).is_finite())) {
        return Err(Reject::NonFinite);
    }
    // subject = <features prefix>.<tf>.<symbol_id> (contracts/streaming.json)
    let tail = subject.strip_prefix(STREAMING.features_head.as_str()).ok_or(Reject::SubjectMismatch)?;
    let (tf, symbol) = tail.split_once('.').ok_or(Reject::SubjectMismatch)?;
    if tf != u.tf || symbol != u.symbol_id {
        return Err(Reject::SubjectMismatch);
    }
    Ok(())
}

/// The part of a features subject that identifies a series: `<tf>.<symbol_id>`.
pub fn series_key(subject: &str) -> Option<&str> {
    subject.strip_prefix(STREAMING.features_head.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(symbol: &str) -> String {
        STREAMING.template("features").render(&[("tf", "1s"), ("symbol", symbol)])
    }

    fn msg(values: &str, fs: &str) -> String {
        format!(r#"{{"symbol_id":"AAPL:US","tf":"1s","ts":1,"known_at":2,"feature_set":"{fs}","values":{values},"seq":3}}"#)
    }

    #[test]
    fn accepts_a_valid_update() {
        let m = msg("[1.0, 2.5]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", 2), Ok(()));
    }

    #[test]
    fn classifies_bad_messages() {
        assert_eq!(decode(b"{not json").unwrap_err(), Reject::MalformedJson);
        assert_eq!(decode(msg("[NaN, 1.0]", "tick_v1").as_bytes()).unwrap_err(), Reject::NonFinite);
        assert_eq!(decode(br#"{"symbol_id":"A"}"#).unwrap_err(), Reject::MalformedJson);
        let m = msg("[1.0, 2.0]", "tick_v0");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", 2), Err(Reject::WrongFeatureSet));
        let m = msg("[1.0]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", 2), Err(Reject::WrongLength));
        let m = msg("[1.0, 1e300]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", 2), Err(Reject::NonFinite));
        let m = msg("[1.0, 2.0]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("MSFT:US"), "tick_v1", 2), Err(Reject::SubjectMismatch));
    }
}
