//! The streaming contract (contracts/streaming.json), embedded at build time.
//!
//! Every NATS subject, stream and KV name the scorer uses comes from here; `feature_store/contract.py`
//! reads the same file at import, so editing a subject there changes both sides with no code edit
//! (tests/serving/test_contract_single_source.py proves it). `mps-scorer --print-contract` prints
//! what this build embedded.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::schema;

/// The contract file as it was when this crate was built.
pub const SOURCE: &str = include_str!("../../contracts/streaming.json");
const SCHEMA: &str = include_str!("../../contracts/streaming.schema.json");

/// The parsed embedded contract (checked by a unit test, so a bad file fails `cargo test`).
pub static STREAMING: LazyLock<Streaming> = LazyLock::new(|| {
    Streaming::parse(SOURCE).unwrap_or_else(|e| panic!("contracts/streaming.json embedded at build time: {e}"))
});

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)] // checked by the schema (const 1); kept so deny_unknown_fields accepts it
    version: u32,
    subjects: BTreeMap<String, String>,
    streams: BTreeMap<String, Vec<String>>,
    kv: RawKv,
    objects: RawObjects,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjects {
    featurizer_state: FeaturizerState,
}

/// The object store of the featurizers' restart checkpoints (one object per engine, feature set, tf).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturizerState {
    pub bucket: String,
    pub key: String,
    /// Object header carrying the MARKET_DATA stream sequence the checkpointed state includes.
    pub position_header: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKv {
    models: ModelsKv,
}

/// The KV bucket holding champion and challenger pointers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsKv {
    pub bucket: String,
    pub champion_key: String,
    /// The challenger pointer, scored in shadow (same value schema as the champion pointer).
    pub challenger_key: String,
    pub history: i64,
}

/// A subject template split into literal text and `{placeholder}` tokens.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    parts: Vec<(bool, String)>,
}

impl Template {
    fn new(text: &str) -> Self {
        let parts = text
            .split('.')
            .map(|t| match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) => (true, name.to_owned()),
                None => (false, t.to_owned()),
            })
            .collect();
        Template { text: text.to_owned(), parts }
    }

    /// The fixed tokens before the first placeholder, e.g. `features.v1`.
    pub fn prefix(&self) -> &str {
        self.text.split(".{").next().unwrap_or(&self.text)
    }

    /// The wildcard that matches every subject this template produces (`features.v1.>`).
    pub fn pattern(&self) -> String {
        if self.parts.iter().any(|(p, _)| *p) {
            format!("{}.>", self.prefix())
        } else {
            self.text.clone()
        }
    }

    /// Fill the placeholders from `tokens` (name, value); a missing one stays as `{name}`.
    pub fn render(&self, tokens: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for (i, (placeholder, t)) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match placeholder.then(|| tokens.iter().find(|(n, _)| n == t)).flatten() {
                Some((_, v)) => out.push_str(v),
                None if *placeholder => {
                    out.push('{');
                    out.push_str(t);
                    out.push('}');
                }
                None => out.push_str(t),
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Subjects, streams and the models bucket.
#[derive(Debug, Clone)]
pub struct Streaming {
    templates: BTreeMap<String, Template>,
    streams: BTreeMap<String, Vec<String>>,
    pub models: ModelsKv,
    pub featurizer_state: FeaturizerState,
    /// `features` prefix plus the dot: what precedes `<tf>.<symbol>` on a FeatureUpdate subject.
    pub features_head: String,
}

impl Streaming {
    /// Parse and check a contract text (schema, stream subject names, the series templates' shape).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let schema_value: Value = serde_json::from_str(SCHEMA).map_err(|e| format!("streaming.schema.json: {e}"))?;
        schema::check_keywords(&schema_value, "streaming.schema.json")?;
        let problems = schema::errors(&value, &schema_value);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let raw: Raw = serde_json::from_value(value).map_err(|e| e.to_string())?;
        for (stream, names) in &raw.streams {
            if let Some(n) = names.iter().find(|n| !raw.subjects.contains_key(*n)) {
                return Err(format!("streams/{stream}: unknown subject {n:?}"));
            }
        }
        let templates: BTreeMap<String, Template> =
            raw.subjects.iter().map(|(k, v)| (k.clone(), Template::new(v))).collect();
        for name in ["features", "signals", "signals_shadow"] {
            let t = &templates[name];
            if !t.as_str().ends_with(".{tf}.{symbol}") || t.prefix().contains('{') {
                return Err(format!("subjects/{name}: must be <fixed tokens>.{{tf}}.{{symbol}}, not {:?}", t.as_str()));
            }
        }
        let features_head = format!("{}.", templates["features"].prefix());
        Ok(Streaming {
            templates,
            streams: raw.streams,
            models: raw.kv.models,
            featurizer_state: raw.objects.featurizer_state,
            features_head,
        })
    }

    /// The template of subject `name` (a key of `subjects`; the schema requires the ones we use).
    pub fn template(&self, name: &str) -> &Template {
        &self.templates[name]
    }

    /// The stream that captures subject `name`.
    pub fn stream_of(&self, name: &str) -> Option<&str> {
        self.streams.iter().find(|(_, v)| v.iter().any(|n| n == name)).map(|(k, _)| k.as_str())
    }

    /// The subject filters of stream `stream`.
    pub fn stream_subjects(&self, stream: &str) -> Vec<String> {
        self.streams.get(stream).map(|v| v.iter().map(|n| self.templates[n].pattern()).collect()).unwrap_or_default()
    }

    /// The KV key of `model_name`'s champion pointer.
    pub fn champion_key(&self, model_name: &str) -> String {
        Template::new(&self.models.champion_key).render(&[("model_name", model_name)])
    }

    /// The KV key of `model_name`'s challenger pointer (scored in shadow).
    pub fn challenger_key(&self, model_name: &str) -> String {
        Template::new(&self.models.challenger_key).render(&[("model_name", model_name)])
    }

    /// The object name of one featurizer's restart checkpoint (`engine` is `rust` or `python`).
    pub fn featurizer_state_key(&self, engine: &str, feature_set: &str, tf: &str) -> String {
        Template::new(&self.featurizer_state.key).render(&[
            ("engine", engine),
            ("feature_set", feature_set),
            ("tf", tf),
        ])
    }

    /// The request-reply subject on which the scorer of `model_name` answers score requests.
    pub fn score_subject(&self, model_name: &str) -> String {
        self.template("score_request").render(&[("model_name", model_name)])
    }

    /// What `--print-contract` prints: resolved patterns, streams and the champion key pattern.
    pub fn describe(&self) -> Value {
        let subjects: BTreeMap<&str, Value> = self
            .templates
            .iter()
            .map(|(k, t)| (k.as_str(), serde_json::json!({"template": t.as_str(), "pattern": t.pattern()})))
            .collect();
        let streams: BTreeMap<&str, Vec<String>> =
            self.streams.keys().map(|s| (s.as_str(), self.stream_subjects(s))).collect();
        serde_json::json!({
            "subjects": subjects,
            "streams": streams,
            "models_bucket": self.models.bucket,
            "champion_key": self.models.champion_key,
            "challenger_key": self.models.challenger_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_contract_parses() {
        let s = &*STREAMING;
        let f = s.template("features");
        assert_eq!(f.render(&[("tf", "1s"), ("symbol", "A:US")]), format!("{}1s.A:US", s.features_head));
        assert!(s.stream_of("signals").is_some() && s.stream_of("deadletter").is_some());
        assert!(s.template("risk_state").pattern() == s.template("risk_state").as_str());
        assert!(Streaming::parse(&SOURCE.replace("\"features\"", "\"feature\"")).is_err());
        assert_ne!(s.champion_key("m"), s.challenger_key("m"));
        assert!(s.score_subject("tick_tiny").ends_with(".tick_tiny") && !s.score_subject("m").contains('{'));
    }

    /// Prints the embedded contract; tests/serving/test_contract_single_source.py reads this line.
    #[test]
    fn print_embedded_contract() {
        println!("EMBEDDED-CONTRACT {}", STREAMING.describe());
    }
}
