//! OpenTelemetry traces: the W3C trace context in NATS headers, spans for score requests and traced
//! FeatureUpdates, and the exporters (off by default).
//!
//! The HTTP API injects `traceparent` / `tracestate` into the headers of its score request
//! (`mps/api/observability.py::inject_headers`); the scorer extracts that context, runs the
//! request inside a `score.request` span (attributes `model`, `model_version`, `symbol_id`, `tf`,
//! `outcome`) and sets its own span as the parent in the reply's headers, so one trace runs
//! API -> NATS -> scorer -> reply. On the streaming path a FeatureUpdate that carries a
//! `traceparent` gets a `score.update` span, from ingest to the JetStream ack (or core publish) of
//! its Signal, whose headers carry that span onward; updates without one get no span.
//!
//! Export is chosen with `--traces SPEC` (or `MPS_SCORER_TRACES`): `off` (default: no provider,
//! no span, no header read: the scoring loop checks one `Option`), `jsonl:PATH` (one JSON object
//! per finished span, appended to PATH) or `otlp[:URL]` (OTLP/HTTP protobuf, default endpoint from
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `http://localhost:4318/v1/traces`; builds with the
//! `otlp` cargo feature only). Spans are batched on the SDK's own thread (`OTEL_BSP_*` variables
//! tune it) and flushed when the scorer stops.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::error::{Result, ScorerError};

/// The W3C header that carries the parent span.
pub const TRACEPARENT: &str = "traceparent";

/// Where finished spans go (`--traces`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TraceExport {
    /// No tracing: no provider, no span, headers never read.
    #[default]
    Off,
    /// One JSON object per span, appended to a file.
    JsonLines(PathBuf),
    /// OTLP over HTTP (protobuf); `None`: the endpoint from the OTEL_* environment or the default.
    Otlp(Option<String>),
}

impl TraceExport {
    /// Parse `off`, `jsonl:PATH` or `otlp[:URL]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad =
            |why: &str| ScorerError::Contract(format!("--traces {spec:?}: {why} (off, jsonl:PATH or otlp[:URL])"));
        match spec.split_once(':') {
            _ if spec == "off" || spec.is_empty() => Ok(TraceExport::Off),
            _ if spec == "otlp" => Ok(TraceExport::Otlp(None)),
            Some(("jsonl", path)) if !path.is_empty() => Ok(TraceExport::JsonLines(PathBuf::from(path))),
            Some(("otlp", url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(TraceExport::Otlp(Some(url.to_owned())))
            }
            Some(("otlp", _)) => Err(bad("the OTLP endpoint must be an http(s) URL")),
            _ => Err(bad("unknown exporter")),
        }
    }
}

/// The tracer, its provider and the W3C propagator; exists only while tracing is on.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// Read NATS headers for the propagator.
struct HeaderReader<'a>(&'a HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Write NATS headers for the propagator.
struct HeaderWriter<'a>(&'a mut HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            // an empty `tracestate` says nothing: leave the header out
            self.0.insert(key, value);
        }
    }
}

impl Telemetry {
    /// The telemetry `export` asks for; `None` when it is off.
    pub fn from_export(export: &TraceExport) -> Result<Option<Self>> {
        match export {
            TraceExport::Off => Ok(None),
            TraceExport::JsonLines(path) => Ok(Some(Self::batched(JsonLinesExporter::create(path.clone())?))),
            TraceExport::Otlp(endpoint) => otlp(endpoint.as_deref()).map(Some),
        }
    }

    /// Telemetry exporting through the SDK's batch processor (its own thread).
    pub fn batched<E: SpanExporter + 'static>(exporter: E) -> Self {
        Self::with_provider(
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build(),
        )
    }

    /// Telemetry exporting each span as it ends (tests: nothing to flush).
    pub fn simple<E: SpanExporter + 'static>(exporter: E) -> Self {
        Self::with_provider(
            SdkTracerProvider::builder().with_simple_exporter(exporter).with_resource(resource()).build(),
        )
    }

    fn with_provider(provider: SdkTracerProvider) -> Self {
        let tracer = provider.tracer("mps-scorer");
        Telemetry { provider, tracer, propagator: TraceContextPropagator::new() }
    }

    /// The remote parent carried by `headers` (an empty context when there is none or it is invalid).
    pub fn extract(&self, headers: Option<&HeaderMap>) -> Context {
        match headers {
            Some(h) => self.propagator.extract(&HeaderReader(h)),
            None => Context::new(),
        }
    }

    /// Start a span named `name` as a child of `parent` (a root span when `parent` holds none).
    pub fn start(&self, name: &'static str, parent: &Context, attributes: Vec<KeyValue>) -> Span {
        self.tracer
            .span_builder(name)
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent)
    }

    /// Headers carrying `span` as the parent (`traceparent`, and `tracestate` when set).
    pub fn inject(&self, span: &Span, headers: &mut HeaderMap) {
        let cx = Context::new().with_remote_span_context(span.span_context().clone());
        self.propagator.inject_context(&cx, &mut HeaderWriter(headers));
    }

    /// Export what is buffered and stop the exporter.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
    }
}

/// Whether `headers` carry a trace context worth a span (a lookup without allocation).
pub fn traced(headers: Option<&HeaderMap>) -> bool {
    const NAME: async_nats::HeaderName = async_nats::HeaderName::from_static(TRACEPARENT);
    headers.is_some_and(|h| h.get(NAME).is_some())
}

fn resource() -> Resource {
    Resource::builder_empty().with_service_name("mps-scorer").build()
}

#[cfg(feature = "otlp")]
fn otlp(endpoint: Option<&str>) -> Result<Telemetry> {
    use opentelemetry_otlp::WithExportConfig;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(url) = endpoint {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().map_err(|e| ScorerError::Contract(format!("OTLP trace exporter: {e}")))?;
    Ok(Telemetry::batched(exporter))
}

#[cfg(not(feature = "otlp"))]
fn otlp(_endpoint: Option<&str>) -> Result<Telemetry> {
    Err(ScorerError::Contract(
        "this mps-scorer was built without the OTLP exporter: rebuild with `--features otlp`, or use --traces jsonl:PATH"
            .into(),
    ))
}

/// One JSON object per finished span, a line each, appended to a file.
///
/// Fields: `name`, `trace_id`, `span_id`, `parent_span_id` (empty for a root span),
/// `parent_is_remote`, `kind`, `start_unix_nano`, `end_unix_nano`, `attributes`, `status`,
/// `service`.
#[derive(Debug)]
pub struct JsonLinesExporter {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
}

impl JsonLinesExporter {
    /// Open (append to) `path`.
    pub fn create(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ScorerError::Io { path: path.display().to_string(), source: e })?;
        Ok(JsonLinesExporter { path, out: Mutex::new(BufWriter::new(file)) })
    }

    fn write(&self, batch: &[SpanData]) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for span in batch {
            serde_json::to_writer(&mut *out, &span_json(span))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => (*f).into(),
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// The JSON line of one finished span.
pub fn span_json(span: &SpanData) -> serde_json::Value {
    let cx = &span.span_context;
    let parent = if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        String::new()
    } else {
        span.parent_span_id.to_string()
    };
    let attributes: serde_json::Map<String, serde_json::Value> =
        span.attributes.iter().map(|kv| (kv.key.to_string(), value_json(&kv.value))).collect();
    serde_json::json!({
        "name": span.name,
        "trace_id": cx.trace_id().to_string(),
        "span_id": cx.span_id().to_string(),
        "parent_span_id": parent,
        "parent_is_remote": span.parent_span_is_remote,
        "kind": format!("{:?}", span.span_kind),
        "start_unix_nano": unix_nanos(span.start_time),
        "end_unix_nano": unix_nanos(span.end_time),
        "attributes": attributes,
        "status": format!("{:?}", span.status),
        "service": "mps-scorer",
    })
}

impl SpanExporter for JsonLinesExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = self
            .write(&batch)
            .map_err(|e| OTelSdkError::InternalFailure(format!("write {}: {e}", self.path.display())));
        std::future::ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush().map_err(|e| OTelSdkError::InternalFailure(format!("flush {}: {e}", self.path.display())))
    }
}

/// A traced update's span, the subject and seq of its Signal, and whether that Signal was queued.
struct Waiting {
    subject: String,
    seq: i64,
    span: Span,
    queued: bool,
}

/// Spans of traced FeatureUpdates in the open batch, waiting for their Signals.
#[derive(Default)]
pub struct UpdateSpans {
    open: Vec<Waiting>,
}

/// The series and seq of an update, read only for traced messages.
#[derive(serde::Deserialize)]
struct UpdateKey<'a> {
    #[serde(borrow)]
    symbol_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    tf: std::borrow::Cow<'a, str>,
    seq: i64,
}

impl UpdateSpans {
    /// Start the `score.update` span of a message carrying a `traceparent`; `None` otherwise.
    pub fn start(&self, tel: &Telemetry, msg: &async_nats::Message) -> Option<Span> {
        let headers = msg.headers.as_ref().filter(|h| traced(Some(h)))?;
        let parent = tel.extract(Some(headers));
        Some(tel.start("score.update", &parent, vec![KeyValue::new("messaging.source", msg.subject.to_string())]))
    }

    /// Keep `span` until the Signal of the update in `payload` is delivered (`refused` = None), or
    /// end it now with `refused` as its outcome (a dead-letter reason, `resent`, `skipped`).
    pub fn taken(&mut self, mut span: Span, payload: &[u8], refused: Option<&'static str>) {
        match (refused, serde_json::from_slice::<UpdateKey>(payload)) {
            (None, Ok(k)) => {
                span.set_attribute(KeyValue::new("symbol_id", k.symbol_id.to_string()));
                let subject = crate::streaming::STREAMING
                    .template("signals")
                    .render(&[("tf", k.tf.as_ref()), ("symbol", k.symbol_id.as_ref())]);
                self.open.push(Waiting { subject, seq: k.seq, span, queued: false });
            }
            (refused, _) => {
                span.set_attribute(KeyValue::new("outcome", refused.unwrap_or("malformed_json")));
                span.end();
            }
        }
    }

    /// Whether any traced update waits for its Signal (the loop's only check when tracing is off).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Put each waiting span into the headers of its queued Signal; `signals` yields (subject,
    /// seq, headers) of the fresh Signals queued.
    pub fn attach<'a>(&mut self, tel: &Telemetry, signals: impl Iterator<Item = (&'a str, i64, &'a mut HeaderMap)>) {
        for (subject, seq, headers) in signals {
            if let Some(w) = self.open.iter_mut().find(|w| !w.queued && w.seq == seq && w.subject == subject) {
                tel.inject(&w.span, headers);
                w.span.set_attribute(KeyValue::new("messaging.destination", subject.to_owned()));
                w.queued = true;
            }
        }
    }

    /// End the spans whose Signals were queued: outcome `published` when `delivered`, else
    /// `not_published`; a span whose update produced no Signal ends as `no_signal`.
    pub fn end_queued(&mut self, delivered: bool) {
        for mut w in std::mem::take(&mut self.open) {
            let outcome = match (w.queued, delivered) {
                (false, _) => "no_signal",
                (true, true) => "published",
                (true, false) => "not_published",
            };
            w.span.set_attribute(KeyValue::new("outcome", outcome));
            w.span.end();
        }
    }
}
