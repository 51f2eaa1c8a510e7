//! Score requests: the HTTP API asks for the Signal of one series' current ring.
//!
//! Subject `score_request` of contracts/streaming.json, one per model (`score.v1.request.<model>`);
//! the request is contracts/score_request.schema.json; the reply is the Signal the newest update of
//! the series would get now (the JSON published on `signals`), or a typed refusal
//! (contracts/score_error.schema.json). Pure: the service publishes what `answer` returns.

use serde::{Deserialize, Serialize};

use crate::engine::{Refusal, Scorer};

/// A score request (contracts/score_request.schema.json).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    pub symbol_id: String,
    #[serde(default)]
    pub tf: Option<String>,
    #[serde(default)]
    pub model_name: Option<String>,
}

/// A typed refusal (contracts/score_error.schema.json).
#[derive(Debug, Serialize)]
pub struct ScoreError {
    pub error: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub have: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need: Option<usize>,
}

impl ScoreError {
    fn new(code: &'static str, error: String) -> Self {
        ScoreError { error, code, have: None, need: None }
    }
}

fn refused(e: ScoreError) -> (Vec<u8>, bool) {
    (serde_json::to_vec(&e).unwrap_or_else(|_| br#"{"error":"unserialisable","code":"model_error"}"#.to_vec()), false)
}

/// Answer one request with `scorer` (serving `model_name`) at `now_ns`: the reply bytes and
/// whether they hold a Signal.
pub fn answer(scorer: &mut Scorer, model_name: &str, payload: &[u8], now_ns: i64) -> (Vec<u8>, bool) {
    let req: ScoreRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return refused(ScoreError::new("bad_request", format!("not a score request: {e}"))),
    };
    if req.symbol_id.is_empty() || req.symbol_id.len() > 64 {
        return refused(ScoreError::new("bad_request", "symbol_id must hold 1 to 64 characters".into()));
    }
    if let Some(asked) = req.model_name.as_deref().filter(|m| *m != model_name) {
        return refused(ScoreError::new("no_model", format!("this scorer serves {model_name:?}, not {asked:?}")));
    }
    let tf = req.tf.unwrap_or_else(|| scorer.meta().tf.clone());
    match scorer.score_current(&tf, &req.symbol_id, now_ns) {
        Ok(mut signal) => {
            signal.published_at = now_ns;
            match serde_json::to_vec(&signal) {
                Ok(bytes) => (bytes, true),
                Err(e) => refused(ScoreError::new("model_error", format!("signal not serialisable: {e}"))),
            }
        }
        Err(r) => {
            let (version, symbol) = (scorer.meta().model_version.clone(), &req.symbol_id);
            let mut e = match &r {
                Refusal::UnknownSymbol => {
                    ScoreError::new(r.code(), format!("no updates of {symbol} at tf {tf} reached this scorer"))
                }
                Refusal::NotEnoughHistory { have, need } => ScoreError::new(
                    r.code(),
                    format!("{symbol} ({tf}) has {have} updates; {model_name} v{version} needs {need}"),
                ),
                Refusal::ModelError(m) => ScoreError::new(r.code(), format!("{model_name} v{version}: {m}")),
            };
            if let Refusal::NotEnoughHistory { have, need } = r {
                (e.have, e.need) = (Some(have), Some(need));
            }
            refused(e)
        }
    }
}
