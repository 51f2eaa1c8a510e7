//! OpenTelemetry: the scorer's spans continue the trace a `traceparent` header names, and carry it
//! onward in the reply's (or the Signal's) headers. The SDK's in-memory exporter is the oracle.

mod common;

use std::time::Instant;

use async_nats::HeaderMap;
use mps_scorer::config::SizingConfig;
use mps_scorer::engine::Scorer;
use mps_scorer::model::{Model, RuntimeOptions};
use mps_scorer::request::{answer, answer_traced};
use mps_scorer::telemetry::{JsonLinesExporter, Telemetry, TraceExport, UpdateSpans};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn scorer() -> Scorer {
    common::init_ort();
    let model = Model::load(&common::model_v1(), None, &RuntimeOptions::default()).unwrap();
    Scorer::new(model, SizingConfig::load(&common::contracts().join("sizing.json")).unwrap(), 64).unwrap()
}

fn update(symbol: &str, seq: i64, ts: i64) -> (String, Vec<u8>) {
    let mut values = vec![0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5e7];
    values[0] = 1e-4 * ((seq % 7) as f64 - 3.0);
    let body = serde_json::json!({
        "symbol_id": symbol, "tf": "1s", "ts": ts, "known_at": ts + 1000, "feature_set": "tick_v1",
        "values": values, "seq": seq,
    });
    (format!("features.v1.1s.{symbol}"), serde_json::to_vec(&body).unwrap())
}

/// A scorer holding a warm AAPL:US ring (lookback updates), and the time of its last update.
fn warm() -> (Scorer, i64) {
    let mut s = scorer();
    let (l, t0) = (s.meta().lookback as i64, 1_000_000_000_000);
    for i in 0..l {
        let (subj, body) = update("AAPL:US", i, t0 + i);
        s.ingest(&subj, &body, Instant::now()).unwrap();
        s.flush(t0 + i).unwrap();
    }
    (s, t0 + l)
}

fn traceparent() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", format!("00-{TRACE}-{PARENT}-01").as_str());
    h.insert("tracestate", "mps=api");
    h
}

fn finished(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    exporter.get_finished_spans().unwrap()
}

fn attr(span: &SpanData, key: &str) -> String {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string()).unwrap_or_default()
}

#[test]
fn score_request_span_continues_the_callers_trace_and_parents_the_reply() {
    let (mut s, now) = warm();
    let exporter = InMemorySpanExporter::default();
    let tel = Telemetry::simple(exporter.clone());
    let body = br#"{"symbol_id":"AAPL:US","tf":"1s","model_name":"tick_tiny"}"#;
    let headers = traceparent();
    let (a, reply) = answer_traced(&mut s, "tick_tiny", Some(&tel), Some(&headers), body, now);
    assert!(a.refusal.is_none(), "{}", String::from_utf8_lossy(&a.body));

    let spans = finished(&exporter);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "score.request");
    assert_eq!(span.span_context.trace_id(), TraceId::from_hex(TRACE).unwrap(), "the caller's trace");
    assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT).unwrap(), "the caller's span is the parent");
    assert!(span.parent_span_is_remote);
    assert_eq!(span.span_context.trace_state().header(), "mps=api", "tracestate kept");
    for (key, want) in
        [("model", "tick_tiny"), ("model_version", "1"), ("symbol_id", "AAPL:US"), ("tf", "1s"), ("outcome", "signal")]
    {
        assert_eq!(attr(span, key), want, "{key}");
    }
    let reply = reply.expect("tracing on: the reply carries the context");
    let sent = reply.get("traceparent").unwrap().as_str();
    assert_eq!(sent, format!("00-{TRACE}-{}-01", span.span_context.span_id()), "the scorer's span parents the reply");
    // the same bytes as the untraced answer
    assert_eq!(a.body, answer(&mut s, "tick_tiny", body, now).0);
}

#[test]
fn refusals_are_traced_with_their_code_and_a_request_without_context_starts_a_trace() {
    let (mut s, now) = warm();
    let exporter = InMemorySpanExporter::default();
    let tel = Telemetry::simple(exporter.clone());
    let (a, reply) = answer_traced(&mut s, "tick_tiny", Some(&tel), None, br#"{"symbol_id":"MSFT:US"}"#, now);
    assert_eq!(a.refusal, Some("unknown_symbol"));
    let spans = finished(&exporter);
    assert_eq!(attr(&spans[0], "outcome"), "unknown_symbol");
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID, "no traceparent: a root span");
    assert!(spans[0].span_context.trace_id() != TraceId::from_hex(TRACE).unwrap());
    let reply = reply.unwrap();
    assert!(reply.get("traceparent").unwrap().as_str().contains(&spans[0].span_context.span_id().to_string()));
    assert!(reply.get("tracestate").is_none(), "no tracestate: no empty header");
    // tracing off: no span, no headers
    let (_, reply) = answer_traced(&mut s, "tick_tiny", None, Some(&traceparent()), br#"{"symbol_id":"MSFT:US"}"#, now);
    assert!(reply.is_none());
    assert_eq!(finished(&exporter).len(), 1);
}

fn message(subject: &str, payload: Vec<u8>, headers: Option<HeaderMap>) -> async_nats::Message {
    async_nats::Message {
        subject: subject.into(),
        reply: None,
        payload: payload.into(),
        headers,
        status: None,
        description: None,
        length: 0,
    }
}

#[test]
fn traced_update_span_rides_in_its_signal_headers() {
    let exporter = InMemorySpanExporter::default();
    let tel = Telemetry::simple(exporter.clone());
    let mut spans = UpdateSpans::default();
    let (subj, body) = update("AAPL:US", 7, 1_000);
    assert!(spans.start(&tel, &message(&subj, body.clone(), None)).is_none(), "no header: no span");
    let mut plain = HeaderMap::new();
    plain.insert("Nats-Msg-Id", "x");
    assert!(spans.start(&tel, &message(&subj, body.clone(), Some(plain))).is_none(), "no traceparent: no span");

    let span = spans.start(&tel, &message(&subj, body.clone(), Some(traceparent()))).unwrap();
    spans.taken(span, &body, None);
    let (other_subj, other_body) = update("MSFT:US", 7, 1_000);
    let refused = spans.start(&tel, &message(&other_subj, other_body.clone(), Some(traceparent()))).unwrap();
    spans.taken(refused, &other_body, Some("late"));
    assert!(!spans.is_empty());

    // the queued Signals: AAPL's (same seq) and an untraced one
    let mut aapl = HeaderMap::new();
    let mut untraced = HeaderMap::new();
    let queued = vec![("signals.v1.1s.MSFT:US", 7, &mut untraced), ("signals.v1.1s.AAPL:US", 7, &mut aapl)];
    spans.attach(&tel, queued.into_iter());
    spans.end_queued(true);
    assert!(spans.is_empty());
    assert!(untraced.get("traceparent").is_none());

    let done = finished(&exporter);
    let by_outcome = |o: &str| done.iter().find(|s| attr(s, "outcome") == o).unwrap_or_else(|| panic!("{o}: {done:?}"));
    let (published, late) = (by_outcome("published"), by_outcome("late"));
    for span in [published, late] {
        assert_eq!(span.name, "score.update");
        assert_eq!(span.span_context.trace_id(), TraceId::from_hex(TRACE).unwrap());
        assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT).unwrap());
    }
    assert_eq!(attr(published, "symbol_id"), "AAPL:US");
    assert_eq!(attr(published, "messaging.destination"), "signals.v1.1s.AAPL:US");
    assert_eq!(
        aapl.get("traceparent").unwrap().as_str(),
        format!("00-{TRACE}-{}-01", published.span_context.span_id()),
        "the Signal's headers name the update's span"
    );
}

#[test]
fn json_lines_exporter_writes_one_object_per_span_on_shutdown() {
    let dir = std::env::temp_dir().join(format!("mps-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spans.jsonl");
    let _ = std::fs::remove_file(&path);
    let (mut s, now) = warm();
    let tel = Telemetry::batched(JsonLinesExporter::create(path.clone()).unwrap());
    let body = br#"{"symbol_id":"AAPL:US"}"#;
    answer_traced(&mut s, "tick_tiny", Some(&tel), Some(&traceparent()), body, now);
    tel.shutdown();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v = &lines[0];
    assert_eq!(
        (v["name"].as_str(), v["trace_id"].as_str(), v["parent_span_id"].as_str()),
        (Some("score.request"), Some(TRACE), Some(PARENT))
    );
    assert_eq!(v["attributes"]["outcome"], "signal");
    assert!(v["end_unix_nano"].as_u64().unwrap() >= v["start_unix_nano"].as_u64().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trace_export_specs_parse_or_are_refused() {
    assert_eq!(TraceExport::parse("off").unwrap(), TraceExport::Off);
    assert_eq!(TraceExport::parse("jsonl:/tmp/x.jsonl").unwrap(), TraceExport::JsonLines("/tmp/x.jsonl".into()));
    assert_eq!(TraceExport::parse("otlp").unwrap(), TraceExport::Otlp(None));
    assert_eq!(
        TraceExport::parse("otlp:http://127.0.0.1:4318/v1/traces").unwrap(),
        TraceExport::Otlp(Some("http://127.0.0.1:4318/v1/traces".into()))
    );
    for bad in ["jsonl:", "otlp:127.0.0.1", "zipkin:x", "on"] {
        assert!(TraceExport::parse(bad).is_err(), "{bad}");
    }
    assert!(Telemetry::from_export(&TraceExport::Off).unwrap().is_none());
}
