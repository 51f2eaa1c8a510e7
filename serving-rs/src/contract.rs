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
    WrongTf,
    NegativeSeq,
    KnownBeforeTs,
    FutureTs,
    SeqJump,
}

/// The largest seq a FeatureUpdate may carry: 2^53 - 1, exact in every JSON reader
/// (contracts/feature_update.schema.json); a seq near 2^63 would make every later update "late".
pub const MAX_SEQ: i64 = (1 << 53) - 1;

impl Reject {
    pub const ALL: [Reject; 12] = [
        Reject::MalformedJson,
        Reject::NonFinite,
        Reject::SubjectMismatch,
        Reject::WrongFeatureSet,
        Reject::WrongLength,
        Reject::Duplicate,
        Reject::Late,
        Reject::WrongTf,
        Reject::NegativeSeq,
        Reject::KnownBeforeTs,
        Reject::FutureTs,
        Reject::SeqJump,
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
            Reject::WrongTf => "wrong_tf",
            Reject::NegativeSeq => "negative_seq",
            Reject::KnownBeforeTs => "known_before_ts",
            Reject::FutureTs => "future_ts",
            Reject::SeqJump => "seq_jump",
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

/// Check what can be checked without per-symbol state (the model's feature set, width and tf).
pub fn validate(
    u: &FeatureUpdate,
    subject: &str,
    feature_set: &str,
    tf: &str,
    n_features: usize,
) -> Result<(), Reject> {
    if u.feature_set != feature_set {
        return Err(Reject::WrongFeatureSet);
    }
    if u.seq < 0 {
        return Err(Reject::NegativeSeq);
    }
    if u.seq > MAX_SEQ {
        return Err(Reject::SeqJump);
    }
    if u.known_at < u.ts {
        return Err(Reject::KnownBeforeTs);
    }
    if u.values.len() != n_features {
        return Err(Reject::WrongLength);
    }
    if u.values.iter().any(|v| !v.is_finite() || !((*v as f32).is_finite())) {
        return Err(Reject::NonFinite);
    }
    // subject = <features prefix>.<tf>.<symbol_id> (contracts/streaming.json)
    let tail = subject.strip_prefix(STREAMING.features_head.as_str()).ok_or(Reject::SubjectMismatch)?;
    let model_tf = tf;
    let (tf, symbol) = tail.split_once('.').ok_or(Reject::SubjectMismatch)?;
    if tf != u.tf || symbol != u.symbol_id {
        return Err(Reject::SubjectMismatch);
    }
    if u.tf != model_tf {
        return Err(Reject::WrongTf);
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
        format!(
            r#"{{"symbol_id":"AAPL:US","tf":"1s","ts":1,"known_at":2,"feature_set":"{fs}","values":{values},"seq":3}}"#
        )
    }

    #[test]
    fn accepts_a_valid_update() {
        let m = msg("[1.0, 2.5]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", "1s", 2), Ok(()));
    }

    #[test]
    fn classifies_bad_messages() {
        assert_eq!(decode(b"{not json").unwrap_err(), Reject::MalformedJson);
        assert_eq!(decode(msg("[NaN, 1.0]", "tick_v1").as_bytes()).unwrap_err(), Reject::NonFinite);
        assert_eq!(decode(br#"{"symbol_id":"A"}"#).unwrap_err(), Reject::MalformedJson);
        let m = msg("[1.0, 2.0]", "tick_v0");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", "1s", 2), Err(Reject::WrongFeatureSet));
        let m = msg("[1.0]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", "1s", 2), Err(Reject::WrongLength));
        let m = msg("[1.0, 1e300]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", "1s", 2), Err(Reject::NonFinite));
        let m = msg("[1.0, 2.0]", "tick_v1");
        let u = decode(m.as_bytes()).unwrap();
        assert_eq!(validate(&u, &subject("MSFT:US"), "tick_v1", "1s", 2), Err(Reject::SubjectMismatch));
        assert_eq!(validate(&u, &subject("AAPL:US"), "tick_v1", "1m", 2), Err(Reject::WrongTf));
        let m = msg("[1.0, 2.0]", "tick_v1").replace(r#""known_at":2"#, r#""known_at":0"#);
        assert_eq!(
            validate(&decode(m.as_bytes()).unwrap(), &subject("AAPL:US"), "tick_v1", "1s", 2),
            Err(Reject::KnownBeforeTs)
        );
        let m = msg("[1.0, 2.0]", "tick_v1").replace(r#""seq":3"#, r#""seq":-1"#);
        assert_eq!(
            validate(&decode(m.as_bytes()).unwrap(), &subject("AAPL:US"), "tick_v1", "1s", 2),
            Err(Reject::NegativeSeq)
        );
        let m = msg("[1.0, 2.0]", "tick_v1").replace(r#""seq":3"#, r#""seq":9223372036854775000"#);
        assert_eq!(
            validate(&decode(m.as_bytes()).unwrap(), &subject("AAPL:US"), "tick_v1", "1s", 2),
            Err(Reject::SeqJump)
        );
    }
}
