//! Criterion benchmarks of the scorer's hot path: model call (batch 1/8/64), ring update, signal.
//!
//! CARGO_TARGET_DIR=~/.cache/mps/cargo-target cargo bench --bench scorer

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mps_scorer::config::SizingConfig;
use mps_scorer::engine::{Binding, Scorer};
use mps_scorer::model::{init_runtime, Model, RuntimeOptions};
use mps_scorer::ring::Ring;
use mps_scorer::signal::{compute_signal, Scratch, UpdateRef};
use mps_scorer::sizing::RiskState;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn model() -> Model {
    let lib = std::env::var("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .ok()
        .or_else(|| mps_scorer::find_ort_in_venv(&repo().join(".venv")))
        .expect("libonnxruntime not found (ORT_DYLIB_PATH or .venv)");
    init_runtime(&lib).expect("load onnx runtime");
    Model::load(&repo().join("contracts/models/tick_tiny/v1/tick_tiny.onnx"), None, &RuntimeOptions::default()).unwrap()
}

fn window_values(i: usize, f: usize) -> Vec<f64> {
    (0..f).map(|j| 1e-4 * ((i * 7 + j) % 11) as f64 + if j >= 9 { 0.2 } else { 0.0 }).collect()
}

fn bench_model(c: &mut Criterion) {
    let mut m = model();
    let (l, f) = (m.meta.lookback, m.meta.n_features());
    let mut g = c.benchmark_group("model_call");
    for batch in [1usize, 8, 64] {
        let x: Vec<f32> = (0..batch * l * f).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| black_box(m.predict(black_box(&x), batch).unwrap()[0]))
        });
    }
    g.finish();
}

fn bench_ring(c: &mut Criterion) {
    let (l, f) = (60, 12);
    let mut ring = Ring::new(l, f);
    let v = window_values(3, f);
    let mut out = vec![0.0f32; l * f];
    c.bench_function("ring_push", |b| b.iter(|| ring.push(black_box(&v))));
    c.bench_function("ring_push_and_copy_window", |b| {
        b.iter(|| {
            ring.push(black_box(&v));
            ring.copy_window(&mut out);
            black_box(out[0])
        })
    });
}

fn bench_signal(c: &mut Criterion) {
    let mut m = model();
    let cfg = SizingConfig::load(&repo().join("contracts/sizing.json")).unwrap();
    let binding = Binding::new(&m.meta, &cfg).unwrap();
    let (l, f) = (m.meta.lookback, m.meta.n_features());
    let x: Vec<f32> = (0..l * f).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect();
    let probs = m.predict(&x, 1).unwrap().to_vec();
    let last = vec![0.2f32; f];
    let risk = RiskState { nav: cfg.nav, intraday_drawdown: 0.0, kill: false };
    let mut scratch = Scratch::default();
    let inputs = binding.inputs(&m.meta, &cfg);
    let update = UpdateRef { symbol_id: "AAPL:US", tf: "1s", ts: 1, known_at: 1, seq: 1 };
    c.bench_function("signal_compute_8_horizons", |b| {
        b.iter(|| compute_signal(black_box(&probs), &inputs, update, &last, true, &risk, 1, &mut scratch).unwrap())
    });
    c.bench_function("signal_compute_and_serialize", |b| {
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            let s = compute_signal(black_box(&probs), &inputs, update, &last, true, &risk, 1, &mut scratch).unwrap();
            buf.clear();
            serde_json::to_writer(&mut buf, &s).unwrap();
            black_box(buf.len())
        })
    });
}

fn bench_engine(c: &mut Criterion) {
    let cfg = SizingConfig::load(&repo().join("contracts/sizing.json")).unwrap();
    let mut g = c.benchmark_group("engine_ingest_flush");
    for batch in [1usize, 64] {
        let mut scorer = Scorer::new(model(), cfg.clone(), batch).unwrap();
        let f = scorer.meta().n_features();
        let symbols: Vec<String> = (0..batch).map(|i| format!("S{i:03}:US")).collect();
        let mut seq = 0i64;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            b.iter(|| {
                seq += 1;
                for s in &symbols {
                    let body = serde_json::json!({"symbol_id": s, "tf": "1s", "ts": seq, "known_at": seq, "feature_set": "tick_v1",
                                                  "values": window_values(seq as usize, f), "seq": seq});
                    let payload = serde_json::to_vec(&body).unwrap();
                    scorer.ingest(&format!("features.v1.1s.{s}"), &payload, Instant::now()).unwrap();
                }
                black_box(scorer.flush(seq).unwrap().len())
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = bench_model, bench_ring, bench_signal, bench_engine }
criterion_main!(benches);
