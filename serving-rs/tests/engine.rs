//! The I/O-free core: validation, rings, micro-batches, hot swap, and model refusal.

mod common;

use std::time::Instant;

use mps_scorer::config::SizingConfig;
use mps_scorer::contract::Reject;
use mps_scorer::engine::Scorer;
use mps_scorer::error::ScorerError;
use mps_scorer::model::{Model, RuntimeOptions};

fn sizing() -> SizingConfig {
    SizingConfig::load(&common::contracts().join("sizing.json")).unwrap()
}

fn scorer(max_batch: usize) -> Scorer {
    common::init_ort();
    let model = Model::load(&common::model_v1(), None, &RuntimeOptions::default()).unwrap();
    Scorer::new(model, sizing(), max_batch).unwrap()
}

fn update(symbol: &str, seq: i64, ts: i64, values: &[f64]) -> (String, Vec<u8>) {
    let body = serde_json::json!({
        "symbol_id": symbol, "tf": "1s", "ts": ts, "known_at": ts + 1000, "feature_set": "tick_v1",
        "values": values, "seq": seq,
    });
    (format!("features.v1.1s.{symbol}"), serde_json::to_vec(&body).unwrap())
}

fn values(i: i64) -> Vec<f64> {
    let mut v = vec![0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5e7];
    v[0] = 1e-4 * ((i % 7) as f64 - 3.0);
    v
}

#[test]
fn scores_one_signal_per_update_and_warms_up() {
    let mut s = scorer(64);
    let l = s.meta().lookback as i64;
    let now = 1_000_000_000_000;
    let mut guards = Vec::new();
    for i in 0..l + 2 {
        let (subj, body) = update("AAPL:US", i, now + i, &values(i));
        assert!(!s.needs_flush(&subj));
        s.ingest(&subj, &body, Instant::now()).unwrap();
        let out = s.flush(now + i).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].signal.seq, i);
        guards.push(out[0].signal.guard);
    }
    assert!(guards[..(l - 1) as usize].iter().all(|g| *g == Some("warmup")));
    assert_eq!(guards[(l - 1) as usize], None);
}

#[test]
fn micro_batch_holds_one_update_per_symbol() {
    let mut s = scorer(64);
    for (i, sym) in ["A:US", "B:US", "C:US"].iter().enumerate() {
        let (subj, body) = update(sym, 1, 10, &values(i as i64));
        s.ingest(&subj, &body, Instant::now()).unwrap();
    }
    let (subj, _) = update("B:US", 2, 11, &values(0));
    assert!(s.needs_flush(&subj), "second update of B must close the batch");
    let out = s.flush(20).unwrap();
    let syms: Vec<_> = out.iter().map(|o| o.signal.symbol_id.as_str()).collect();
    assert_eq!(syms, ["A:US", "B:US", "C:US"]);
    assert!(!s.needs_flush(&subj));
}

#[test]
fn rejects_bad_messages_without_panicking() {
    let mut s = scorer(8);
    let (subj, body) = update("AAPL:US", 5, 100, &values(0));
    s.ingest(&subj, &body, Instant::now()).unwrap();
    s.flush(100).unwrap();
    let cases: Vec<(String, Vec<u8>, Reject)> = vec![
        (subj.clone(), body.clone(), Reject::Duplicate),
        {
            let (a, b) = update("AAPL:US", 4, 101, &values(0));
            (a, b, Reject::Late)
        },
        {
            let (a, b) = update("AAPL:US", 6, 99, &values(0));
            (a, b, Reject::Late)
        },
        {
            let (a, b) = update("AAPL:US", 7, 101, &values(0)[..5]);
            (a, b, Reject::WrongLength)
        },
        (subj.clone(), b"{\"symbol_id\": ".to_vec(), Reject::MalformedJson),
        (
            subj.clone(),
            String::from_utf8(body.clone()).unwrap().replace("tick_v1", "tick_v0").into_bytes(),
            Reject::WrongFeatureSet,
        ),
        (
            subj.clone(),
            String::from_utf8(body.clone())
                .unwrap()
                .replace("[0.0003", "[NaN")
                .replace("[-0.0003", "[NaN")
                .into_bytes(),
            Reject::NonFinite,
        ),
        ("features.v1.1s.MSFT:US".into(), body.clone(), Reject::SubjectMismatch),
    ];
    for (subj, body, reason) in cases {
        assert_eq!(s.ingest(&subj, &body, Instant::now()), Err(reason), "{}", String::from_utf8_lossy(&body));
    }
    // Random bytes and truncations never panic and never enter a batch.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for n in 0..3000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut junk = body.clone();
        let cut = (x as usize) % junk.len();
        junk.truncate(cut);
        if n % 2 == 0 {
            junk.push((x >> 8) as u8);
        }
        let _ = s.ingest("features.v1.1s.AAPL:US", &junk, Instant::now());
    }
    assert!(s.pending() <= 1);
}

#[test]
fn swaps_models_between_batches_keeping_rings() {
    let mut s = scorer(8);
    for i in 0..3 {
        let (subj, body) = update("AAPL:US", i, i, &values(i));
        s.ingest(&subj, &body, Instant::now()).unwrap();
        assert_eq!(s.flush(i).unwrap()[0].signal.model_version, "1");
    }
    let v2 = Model::load(&common::model_v2(), None, &RuntimeOptions::default()).unwrap();
    let (subj, body) = update("AAPL:US", 3, 3, &values(3));
    s.ingest(&subj, &body, Instant::now()).unwrap();
    assert!(
        s.swap_model(Model::load(&common::model_v2(), None, &RuntimeOptions::default()).unwrap()).is_err(),
        "swap with an open batch"
    );
    assert_eq!(s.flush(3).unwrap()[0].signal.model_version, "1");
    let old = s.swap_model(v2).unwrap();
    assert_eq!(old.meta.model_version, "1");
    let (subj, body) = update("AAPL:US", 4, 4, &values(4));
    s.ingest(&subj, &body, Instant::now()).unwrap();
    assert_eq!(s.flush(4).unwrap()[0].signal.model_version, "2");
    assert_eq!(s.symbols(), 1);
}

#[test]
fn refuses_corrupt_or_mismatching_models() {
    common::init_ort();
    let opts = RuntimeOptions::default();
    let dir = std::env::temp_dir().join(format!("mps-scorer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Wrong sha256 in the pointer.
    let err = Model::load(&common::model_v1(), Some(&"0".repeat(64)), &opts).unwrap_err();
    assert!(matches!(err, ScorerError::Checksum { .. }), "{err}");
    // Truncated ONNX bytes.
    let bytes = std::fs::read(common::model_v1()).unwrap();
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Model::load(&corrupt, None, &opts).is_err());
    // v2's graph beside v1's golden vectors: the golden file's sha differs from v2's metadata.
    let mixed = dir.join("tick_tiny.onnx");
    std::fs::copy(common::model_v2(), &mixed).unwrap();
    std::fs::copy(common::model_v1().with_file_name("tick_tiny.golden.json"), dir.join("tick_tiny.golden.json"))
        .unwrap();
    let err = Model::load(&mixed, None, &opts).unwrap_err();
    assert!(matches!(err, ScorerError::Checksum { .. }), "{err}");
    // Missing golden file.
    std::fs::remove_file(dir.join("tick_tiny.golden.json")).unwrap();
    assert!(matches!(Model::load(&mixed, None, &opts).unwrap_err(), ScorerError::Io { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sizing_config_rejects_unknown_keys() {
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::contracts().join("sizing.json")).unwrap()).unwrap();
    raw["kelly_alfa"] = serde_json::json!(0.5);
    assert!(SizingConfig::from_json(raw, "test").is_err());
}

#[test]
fn cuda_request_falls_back_to_cpu_with_a_reason_unless_required() {
    use mps_scorer::model::Device;
    common::init_ort();
    // The onnxruntime wheel in .venv is the CPU build, so the CUDA EP cannot register here
    // (with or without the `cuda` feature): the scorer must say why and serve on CPU.
    let soft = RuntimeOptions { intra_threads: 1, device: Device::Cuda { required: false } };
    match Model::load(&common::model_v1(), None, &soft) {
        Ok(m) => assert!(m.device == "cuda" || m.device.starts_with("cpu (cuda fallback: "), "{}", m.device),
        Err(e) => panic!("fallback must not fail: {e}"),
    }
    let hard = RuntimeOptions { intra_threads: 1, device: Device::Cuda { required: true } };
    if let Ok(m) = Model::load(&common::model_v1(), None, &hard) {
        assert_eq!(m.device, "cuda", "required CUDA must either run on CUDA or fail");
    }
}

fn scorer_with(path: &std::path::Path) -> Scorer {
    common::init_ort();
    Scorer::new(Model::load(path, None, &RuntimeOptions::default()).unwrap(), sizing(), 64).unwrap()
}

fn feed(s: &mut Scorer, symbol: &str, n: i64, t0: i64) -> Option<mps_scorer::signal::Signal> {
    let mut last = None;
    for i in 0..n {
        let (subj, body) = update(symbol, i, t0 + i, &values(i));
        s.ingest(&subj, &body, Instant::now()).unwrap();
        last = s.flush(t0 + i).unwrap().pop().map(|o| o.signal);
    }
    last
}

#[test]
fn score_request_answers_the_current_ring_like_its_last_signal() {
    use mps_scorer::engine::Refusal;
    let mut s = scorer(64);
    let l = s.meta().lookback as i64;
    let t0 = 1_000_000_000_000;
    assert_eq!(s.score_current("1s", "AAPL:US", t0).unwrap_err(), Refusal::UnknownSymbol);
    feed(&mut s, "AAPL:US", l - 1, t0);
    let refusal = s.score_current("1s", "AAPL:US", t0 + l).unwrap_err();
    assert_eq!(refusal, Refusal::NotEnoughHistory { have: (l - 1) as u64, need: l as usize });
    assert_eq!(refusal.code(), "not_enough_history");
    let mut s = scorer(64);
    let last = feed(&mut s, "AAPL:US", l + 5, t0).unwrap();
    let now = t0 + l + 4; // the clock the last signal was scored at
    let answered = s.score_current("1s", "AAPL:US", now).unwrap();
    assert_eq!(answered, last, "a request scores the same window the last update was scored on");
    assert_eq!(s.score_current("1m", "AAPL:US", now).unwrap_err(), Refusal::UnknownSymbol);
    assert_eq!(s.pending(), 0, "a request leaves the micro-batch alone");
}

#[test]
fn score_replies_are_typed() {
    use mps_scorer::request::answer;
    let mut s = scorer(64);
    let l = s.meta().lookback as i64;
    feed(&mut s, "AAPL:US", l, 10);
    let reply = |s: &mut Scorer, body: &str| {
        let (bytes, ok) = answer(s, "tick_tiny", body.as_bytes(), 10 + l);
        (serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(), ok)
    };
    let (v, ok) = reply(&mut s, r#"{"symbol_id":"AAPL:US","tf":null,"model_name":"tick_tiny"}"#);
    assert!(ok && v["symbol_id"] == "AAPL:US" && v["seq"] == l - 1 && v["published_at"] == 10 + l, "{v}");
    for (body, code) in [
        ("{not json", "bad_request"),
        (r#"{"symbol_id":"AAPL:US","extra":1}"#, "bad_request"),
        (r#"{"symbol_id":""}"#, "bad_request"),
        (r#"{"symbol_id":"AAPL:US","model_name":"other"}"#, "no_model"),
        (r#"{"symbol_id":"MSFT:US"}"#, "unknown_symbol"),
    ] {
        let (v, ok) = reply(&mut s, body);
        assert!(!ok && v["code"] == code && v["error"].is_string(), "{body}: {v}");
    }
}

#[test]
fn shadow_challenger_adopts_the_champion_rings_and_scores_like_a_fresh_challenger() {
    let t0 = 1_000_000_000_000;
    let mut champion = scorer_with(&common::model_v1());
    let l = champion.meta().lookback as i64;
    feed(&mut champion, "AAPL:US", l + 3, t0);
    let mut fresh = scorer_with(&common::model_v2());
    feed(&mut fresh, "AAPL:US", l + 3, t0);
    let v2 = Model::load(&common::model_v2(), None, &RuntimeOptions::default()).unwrap();
    let limits = mps_scorer::engine::Limits::default();
    let mut shadow = mps_scorer::shadow::start(&champion, v2, &sizing(), 64, limits).unwrap();
    let now = t0 + l + 3;
    let (a, b) =
        (shadow.score_current("1s", "AAPL:US", now).unwrap(), fresh.score_current("1s", "AAPL:US", now).unwrap());
    assert_eq!(a, b, "adopted rings = the rings a challenger fed from the start would hold");
    assert_ne!(a.model_version, champion.score_current("1s", "AAPL:US", now).unwrap().model_version);
    // both keep scoring the same next update
    let (subj, body) = update("AAPL:US", l + 3, now, &values(l + 3));
    shadow.ingest(&subj, &body, Instant::now()).unwrap();
    fresh.ingest(&subj, &body, Instant::now()).unwrap();
    assert_eq!(shadow.flush(now).unwrap()[0].signal, fresh.flush(now).unwrap()[0].signal);
    // the champion's own file is no challenger
    let same = Model::load(&common::model_v1(), None, &RuntimeOptions::default()).unwrap();
    assert!(mps_scorer::shadow::start(&champion, same, &sizing(), 64, limits).is_err());
}
