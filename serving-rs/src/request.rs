//! Score requests: the HTTP API asks for the Signal of one series' current ring.
//!
//! Subject `score_request` of contracts/streaming.json, one per model (`score.v1.request.<model>`);
//! the request is contracts/score_request.schema.json; the reply is the Signal the newest update of
//! the series would get now (the JSON published on `signals`), or a typed refusal
//! (contracts/score_error.schema.json). Pure: the service publishes what `answer` returns.
//! With tracing on, [`answer_traced`] runs the answer inside a `score.request` span, child of the
//! `traceparent` the API sent, and returns the reply headers that carry that span (telemetry.rs).

use async_nats::HeaderMap;
use opentelemetry::trace::Span as _;
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};

use crate::engine::{Refusal, Scorer};
use crate::telemetry::Telemetry;

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

/// A reply: its bytes, the refusal code (`None`: a Signal) and the series asked for (when parsed).
pub struct Answer {
    pub body: Vec<u8>,
    pub refusal: Option<&'static str>,
    pub symbol_id: Option<String>,
    pub tf: Option<String>,
}

fn refused(e: ScoreError) -> Answer {
    let code = e.code;
    let body =
        serde_json::to_vec(&e).unwrap_or_else(|_| br#"{"error":"unserialisable","code":"model_error"}"#.to_vec());
    Answer { body, refusal: Some(code), symbol_id: None, tf: None }
}

/// Answer one request with `scorer` (serving `model_name`) at `now_ns`: the reply bytes and
/// whether they hold a Signal.
pub fn answer(scorer: &mut Scorer, model_name: &str, payload: &[u8], now_ns: i64) -> (Vec<u8>, bool) {
    let a = answer_full(scorer, model_name, payload, now_ns);
    (a.body, a.refusal.is_none())
}

/// [`answer`] inside a `score.request` span when `tel` is set: the span's parent is the context in
/// `headers` (a root span without one); the returned headers carry the span to the reply.
pub fn answer_traced(
    scorer: &mut Scorer,
    model_name: &str,
    tel: Option<&Telemetry>,
    headers: Option<&HeaderMap>,
    payload: &[u8],
    now_ns: i64,
) -> (Answer, Option<HeaderMap>) {
    let Some(tel) = tel else { return (answer_full(scorer, model_name, payload, now_ns), None) };
    let parent = tel.extract(headers);
    let version = scorer.meta().model_version.clone();
    let mut span = tel.start(
        "score.request",
        &parent,
        vec![KeyValue::new("model", model_name.to_owned()), KeyValue::new("model_version", version)],
    );
    let a = answer_full(scorer, model_name, payload, now_ns);
    if let Some(symbol) = &a.symbol_id {
        span.set_attribute(KeyValue::new("symbol_id", symbol.clone()));
    }
    span.set_attribute(KeyValue::new("tf", a.tf.clone().unwrap_or_else(|| scorer.meta().tf.clone())));
    span.set_attribute(KeyValue::new("outcome", a.refusal.unwrap_or("signal")));
    let mut reply = HeaderMap::new();
    tel.inject(&span, &mut reply);
    span.end();
    (a, Some(reply))
}

fn answer_full(scorer: &mut Scorer, model_name: &str, payload: &[u8], now_ns: i64) -> Answer {
    let req: ScoreRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return refused(ScoreError::new("bad_request", format!("not a score request: {e}"))),
    };
    let mut a = answer_request(scorer, model_name, &req, now_ns);
    a.symbol_id = Some(req.symbol_id);
    a.tf = req.tf;
    a
}

fn answer_request(scorer: &mut Scorer, model_name: &str, req: &ScoreRequest, now_ns: i64) -> Answer {
    if req.symbol_id.is_empty() || req.symbol_id.len() > 64 {
        return refused(ScoreError::new("bad_request", "symbol_id must hold 1 to 64 characters".into()));
    }
    if let Some(asked) = req.model_name.as_deref().filter(|m| *m != model_name) {
        return refused(ScoreError::new("no_model", format!("this scorer serves {model_name:?}, not {asked:?}")));
    }
    let tf = req.tf.clone().unwrap_or_else(|| scorer.meta().tf.clone());
    match scorer.score_current(&tf, &req.symbol_id, now_ns) {
        Ok(mut signal) => {
            signal.published_at = now_ns;
            match serde_json::to_vec(&signal) {
                Ok(body) => Answer { body, refusal: None, symbol_id: None, tf: None },
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
