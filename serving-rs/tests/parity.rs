//! Signals from Rust equal the Python reference on the golden vectors in contracts/ (to 1e-6).

mod common;

use mps_scorer::config::SizingConfig;
use mps_scorer::engine::Binding;
use mps_scorer::model::{Model, RuntimeOptions};
use mps_scorer::signal::{compute_signal, Scratch, Signal, UpdateRef};
use mps_scorer::sizing::{kelly_exposure, RiskState};
use serde_json::Value;

const NUMERIC: &[&str] = &[
    "prob_up",
    "expected_return",
    "expected_return_gross",
    "std",
    "q05",
    "q25",
    "q50",
    "q75",
    "q95",
    "band_lo",
    "band_hi",
    "band_alpha",
    "conf",
    "avg_gain",
    "avg_loss",
    "kelly",
    "kelly_frac",
    "size",
];

fn golden() -> Value {
    let text = std::fs::read_to_string(common::contracts().join("golden/signals.json")).expect("read golden signals");
    serde_json::from_str(&text).expect("parse golden signals")
}

fn f32s(v: &Value) -> Vec<f32> {
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
            other => panic!("unexpected {other}"),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn signal_for(model: &mut Model, case: &Value, probs: Option<&[f32]>) -> Signal {
    let cfg = SizingConfig::from_json(case["sizing"].clone(), "golden case").unwrap();
    let binding = Binding::new(&model.meta, &cfg).unwrap();
    let probs: Vec<f32> = match probs {
        Some(p) => p.to_vec(),
        None => match case.get("window") {
            Some(w) => model.predict(&f32s(w), 1).unwrap().to_vec(),
            None => f32s(&case["probs"]),
        },
    };
    let u = &case["update"];
    let update = UpdateRef {
        symbol_id: u["symbol_id"].as_str().unwrap(),
        tf: u["tf"].as_str().unwrap(),
        ts: u["ts"].as_i64().unwrap(),
        known_at: u["known_at"].as_i64().unwrap(),
        seq: u["seq"].as_i64().unwrap(),
    };
    let risk: RiskState = serde_json::from_value(case["risk"].clone()).unwrap();
    let last = f32s(&case["last_features"]);
    let inputs = binding.inputs(&model.meta, &cfg);
    compute_signal(
        &probs,
        &inputs,
        update,
        &last,
        case["warm"].as_bool().unwrap(),
        &risk,
        case["now_ns"].as_i64().unwrap(),
        &mut Scratch::default(),
    )
    .expect("valid distribution")
}

/// Kelly exposure is mean / variance-like: it amplifies float32 noise in the probabilities, so its
/// fields are compared relative to their size (`kelly_rtol`), the distribution's to `tol`.
fn assert_matches(name: &str, got: &Signal, expected: &Value, tol: f64, kelly_rtol: f64) -> f64 {
    let got = serde_json::to_value(got).unwrap();
    let mut worst = 0.0f64;
    for field in NUMERIC {
        let (g, e) = (got[field].as_f64().unwrap(), expected[field].as_f64().unwrap());
        let diff = (g - e).abs();
        if ["kelly", "kelly_frac", "size"].contains(field) {
            assert!(diff <= kelly_rtol * e.abs().max(1.0), "{name}.{field}: rust {g} python {e} (diff {diff:e})");
            continue;
        }
        worst = worst.max(diff);
        assert!(diff <= tol, "{name}.{field}: rust {g} python {e} (diff {diff:e})");
    }
    let notional = (got["notional"].as_f64().unwrap(), expected["notional"].as_f64().unwrap());
    // notional = size * NAV: equal to within tol of NAV, as size is to within tol.
    let nav = (notional.1 / expected["size"].as_f64().unwrap()).abs();
    let nav = if nav.is_finite() { nav } else { 1.0 };
    assert!((notional.0 - notional.1).abs() <= kelly_rtol * nav, "{name}.notional {notional:?}");
    match (got["vol_scale"].as_f64(), expected["vol_scale"].as_f64()) {
        (Some(g), Some(e)) => assert!((g - e).abs() <= tol, "{name}.vol_scale: rust {g} python {e}"),
        (g, e) => assert_eq!(g, e, "{name}.vol_scale"),
    }
    for field in [
        "symbol_id",
        "tf",
        "ts",
        "known_at",
        "seq",
        "model",
        "model_version",
        "horizon",
        "horizon_unit",
        "capped",
        "guard",
        "schema",
    ] {
        assert_eq!(got[field], expected[field], "{name}.{field}");
    }
    let (gd, ed) = (got["distribution"].as_array().unwrap(), expected["distribution"].as_array().unwrap());
    assert_eq!(gd.len(), ed.len(), "{name}: horizons");
    for (g, e) in gd.iter().zip(ed) {
        assert_eq!(g["horizon"], e["horizon"]);
        for f in ["prob_up", "mean", "std", "q05", "q50", "q95", "conf"] {
            let diff = (g[f].as_f64().unwrap() - e[f].as_f64().unwrap()).abs();
            worst = worst.max(diff);
            assert!(diff <= tol, "{name}.distribution[{}].{f}: diff {diff:e}", g["horizon"]);
        }
    }
    worst
}

#[test]
fn golden_signals_match_python_reference() {
    common::init_ort();
    let g = golden();
    let tol = g["tolerance"].as_f64().unwrap();
    assert!(tol <= 1e-6);
    let mut model =
        Model::load(&common::contracts().join(g["model"].as_str().unwrap()), None, &RuntimeOptions::default()).unwrap();
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 10, "golden file holds too few cases");
    let mut worst = 0.0f64;
    for case in cases {
        let got = signal_for(&mut model, case, None);
        worst = worst.max(assert_matches(case["name"].as_str().unwrap(), &got, &case["expected"], tol, tol));
    }
    eprintln!("parity: {} cases, worst abs diff {worst:e}", cases.len());
}

#[test]
fn batched_model_calls_match_single_calls() {
    common::init_ort();
    let g = golden();
    let mut model = Model::load(&common::model_v1(), None, &RuntimeOptions::default()).unwrap();
    let windows: Vec<&Value> = g["cases"].as_array().unwrap().iter().filter(|c| c.get("window").is_some()).collect();
    let x: Vec<f32> = windows.iter().flat_map(|c| f32s(&c["window"])).collect();
    let batched = model.predict(&x, windows.len()).unwrap().to_vec();
    let hk = batched.len() / windows.len();
    for (i, case) in windows.iter().enumerate() {
        let got = signal_for(&mut model, case, Some(&batched[i * hk..(i + 1) * hk]));
        // batched and single model calls differ in the last float32 bits, which Kelly amplifies
        assert_matches(case["name"].as_str().unwrap(), &got, &case["expected"], 1e-6, 1e-4);
    }
}

#[test]
fn every_guard_and_cap_is_covered_by_the_golden_cases() {
    let g = golden();
    let expected: Vec<&Value> = g["cases"].as_array().unwrap().iter().map(|c| &c["expected"]).collect();
    for guard in ["stale", "drawdown_kill", "warmup"] {
        assert!(expected.iter().any(|e| e["guard"] == guard), "no golden case for guard {guard}");
    }
    for cap in ["vol", "nav", "adv"] {
        assert!(
            expected.iter().any(|e| e["capped"].as_array().unwrap().iter().any(|c| c == cap)),
            "no case capped by {cap}"
        );
    }
    assert!(expected.iter().any(|e| e["size"].as_f64().unwrap() > 0.0));
    assert!(expected.iter().any(|e| e["size"].as_f64().unwrap() < 0.0));
}

#[test]
fn kelly_matches_scipy_optimum() {
    let text = std::fs::read_to_string(common::contracts().join("golden/kelly.json")).expect("read golden kelly");
    let g: Value = serde_json::from_str(&text).expect("parse golden kelly");
    let tol = g["tolerance"].as_f64().unwrap();
    let floats = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let mut scratch = Default::default();
    let (mut worst, mut nonzero) = (0.0f64, 0);
    for case in g["cases"].as_array().unwrap() {
        let f = kelly_exposure(
            &floats(&case["probs"]),
            &floats(&case["returns"]),
            case["cost"].as_f64().unwrap(),
            case["kelly_max"].as_f64().unwrap(),
            &mut scratch,
        );
        let e = case["expected"].as_f64().unwrap();
        let rel = (f - e).abs() / e.abs().max(1.0);
        worst = worst.max(rel);
        nonzero += usize::from(e != 0.0);
        assert!(rel <= tol, "kelly {f} vs scipy {e} (rel {rel:e})");
    }
    assert!(nonzero >= 10, "too few cases with an edge");
    eprintln!("kelly vs scipy: worst relative diff {worst:e}");
}
