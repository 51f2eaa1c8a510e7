//! Market data in and FeatureUpdates out, as JSON on the wire.
//!
//! Market data (`feature_store/streaming/market_data.py`): one object per event on
//! `md.trades.<symbol>` / `md.quotes.<symbol>`, `symbol_id` (string) and `ts` (integer UTC ns)
//! required, a trade's `price` and `size` numbers, a quote side null or absent when unchanged.
//! FeatureUpdates (contracts/feature_update.schema.json): the fields and numbers the Python
//! featurizer publishes, shortest round-trip decimals, so a reader gets the same f64 bits.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::streaming::STREAMING;

/// A decoded market-data event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Trade {
        symbol: Cow<'a, str>,
        ts: i64,
        price: f64,
        size: f64,
    },
    Quote {
        symbol: Cow<'a, str>,
        ts: i64,
        bid: Option<f64>,
        bid_size: Option<f64>,
        ask: Option<f64>,
        ask_size: Option<f64>,
    },
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    symbol_id: Cow<'a, str>,
    ts: i64,
    #[serde(default)]
    price: Option<f64>,
    #[serde(default)]
    size: Option<f64>,
    #[serde(default)]
    bid: Option<f64>,
    #[serde(default)]
    bid_size: Option<f64>,
    #[serde(default)]
    ask: Option<f64>,
    #[serde(default)]
    ask_size: Option<f64>,
}

/// The market-data subject prefixes (`md.trades.`, `md.quotes.`) from the streaming contract.
#[derive(Debug, Clone)]
pub struct Subjects {
    trades: String,
    quotes: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects {
            trades: format!("{}.", STREAMING.template("trades").prefix()),
            quotes: format!("{}.", STREAMING.template("quotes").prefix()),
        }
    }
}

impl Subjects {
    /// One subject filter covering trades and quotes (one subscription keeps their relative order).
    pub fn wildcard(&self) -> String {
        let common: Vec<&str> = self
            .trades
            .trim_end_matches('.')
            .split('.')
            .zip(self.quotes.trim_end_matches('.').split('.'))
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a)
            .collect();
        if common.is_empty() {
            ">".into()
        } else {
            format!("{}.>", common.join("."))
        }
    }

    /// The stream filters (`md.trades.>`, `md.quotes.>`).
    pub fn patterns(&self) -> Vec<String> {
        vec![format!("{}>", self.trades), format!("{}>", self.quotes)]
    }

    /// Parse one message; the error says what is wrong (the message is counted bad and dropped).
    pub fn decode<'a>(&self, subject: &str, payload: &'a [u8]) -> Result<Event<'a>, String> {
        let trade = if subject.starts_with(&self.trades) {
            true
        } else if subject.starts_with(&self.quotes) {
            false
        } else {
            return Err(format!("{subject:?} is not a market-data subject"));
        };
        let raw: Raw<'a> = serde_json::from_slice(payload).map_err(|e| format!("market data on {subject}: {e}"))?;
        if trade {
            match (raw.price, raw.size) {
                (Some(price), Some(size)) => Ok(Event::Trade { symbol: raw.symbol_id, ts: raw.ts, price, size }),
                _ => Err(format!("trade {} at {}: price and size must be numbers", raw.symbol_id, raw.ts)),
            }
        } else {
            Ok(Event::Quote {
                symbol: raw.symbol_id,
                ts: raw.ts,
                bid: raw.bid,
                bid_size: raw.bid_size,
                ask: raw.ask,
                ask_size: raw.ask_size,
            })
        }
    }
}

#[derive(Serialize)]
struct Out<'a> {
    symbol_id: &'a str,
    tf: &'a str,
    ts: i64,
    known_at: i64,
    feature_set: &'a str,
    values: &'a [f64],
    seq: i64,
}

/// Append one FeatureUpdate's JSON to `buf` (None when a value is not finite: the schema refuses it).
pub fn encode_update(
    buf: &mut Vec<u8>,
    symbol: &str,
    tf: &str,
    ts: i64,
    feature_set: &str,
    values: &[f64],
) -> Option<()> {
    if !values.iter().all(|v| v.is_finite()) {
        return None;
    }
    let out = Out { symbol_id: symbol, tf, ts, known_at: ts, feature_set, values, seq: ts.div_euclid(1_000_000_000) };
    serde_json::to_writer(buf, &out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_trades_and_one_sided_quotes() {
        let s = Subjects::default();
        let t = s.decode("md.trades.BAC:US", br#"{"symbol_id":"BAC:US","ts":5,"price":14,"size":100.0,"seq":0}"#);
        assert_eq!(t, Ok(Event::Trade { symbol: "BAC:US".into(), ts: 5, price: 14.0, size: 100.0 }));
        let q = s.decode(
            "md.quotes.BAC:US",
            br#"{"symbol_id":"BAC:US","ts":6,"bid":13.9,"bid_size":5.0,"ask":null,"ask_size":null,"seq":1}"#,
        );
        assert_eq!(
            q,
            Ok(Event::Quote {
                symbol: "BAC:US".into(),
                ts: 6,
                bid: Some(13.9),
                bid_size: Some(5.0),
                ask: None,
                ask_size: None
            })
        );
        assert_eq!(s.wildcard(), "md.>");
    }

    #[test]
    fn refuses_what_python_refuses() {
        let s = Subjects::default();
        assert!(s.decode("md.trades.A", br#"{"symbol_id":"A","ts":1.5,"price":1,"size":1}"#).is_err());
        assert!(s.decode("md.trades.A", br#"{"symbol_id":"A","ts":1,"price":null,"size":1}"#).is_err());
        assert!(s.decode("md.trades.A", br#"{"symbol_id":7,"ts":1,"price":1,"size":1}"#).is_err());
        assert!(s.decode("md.quotes.A", br#"{"symbol_id":"A","ts":1,"bid":"x"}"#).is_err());
        assert!(s.decode("features.v1.1s.A", b"{}").is_err());
        assert!(s.decode("md.trades.A", b"not json").is_err());
    }

    #[test]
    fn encodes_the_python_message_and_refuses_non_finite_values() {
        let mut buf = Vec::new();
        encode_update(&mut buf, "A:US", "1s", 3_000_000_000, "tick_v2", &[0.1, -2.5e-17]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["known_at"], v["ts"]);
        assert_eq!(v["values"][1].as_f64(), Some(-2.5e-17));
        assert!(encode_update(&mut Vec::new(), "A", "1s", 0, "x", &[f64::NAN]).is_none());
    }
}
