//! `mps-loadgen`: publish FeatureUpdates at a fixed rate over N symbols and time the Signals back.
//!
//! mps-loadgen --nats URL --rate 10000 --seconds 10 --symbols 500 --features 12 --out result.json
//!
//! Each update carries known_at = its publish time (ns); latency = receipt of the Signal minus
//! that. Writes {"published","received","seconds","latencies_ns":[...]} for benchmarks/scorer_e2e.py
//! to summarise with HdrHistogram. A load generator in Rust keeps the harness's CPU use small on
//! a 2-core machine, so the figures describe the scorer rather than the client.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde::Deserialize;

#[derive(Deserialize)]
struct SignalTimes {
    known_at: i64,
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .ok()
            .with_context(|| format!("bad {name}")),
        None => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url: String = arg(&args, "--nats", "nats://127.0.0.1:4222".to_string())?;
    let rate: f64 = arg(&args, "--rate", 1000.0)?;
    let seconds: f64 = arg(&args, "--seconds", 5.0)?;
    let n_symbols: usize = arg(&args, "--symbols", 500)?;
    let n_features: usize = arg(&args, "--features", 12)?;
    let drain_s: f64 = arg(&args, "--drain-seconds", 5.0)?;
    let seq0: i64 = arg(&args, "--seq-start", 0)?;
    let out: String = arg(&args, "--out", String::new())?;
    if rate <= 0.0 || out.is_empty() {
        bail!("need --rate > 0 and --out PATH");
    }
    // The receiver runs on its own thread and connection, so a publishing burst never delays the
    // timestamp taken when a Signal arrives.
    let received = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u64>::with_capacity((rate * seconds) as usize + 16)));
    let (r2, l2, url2) = (received.clone(), lat.clone(), url.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("receiver runtime");
        rt.block_on(async move {
            let setup = async {
                let client = async_nats::connect(&url2).await.context("connect receiver")?;
                let sub = client.subscribe("signals.v1.>").await.context("subscribe")?;
                client.flush().await?;
                anyhow::Ok((client, sub))
            };
            let (_client, mut sub) = match setup.await {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while let Some(msg) = sub.next().await {
                let t = now_ns();
                if let Ok(s) = serde_json::from_slice::<SignalTimes>(&msg.payload) {
                    l2.lock().unwrap().push((t - s.known_at).max(0) as u64);
                    r2.fetch_add(1, Relaxed);
                }
            }
        });
    });
    ready_rx.recv().context("receiver thread")??;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let client = async_nats::connect(&url).await.context("connect")?;
        let symbols: Vec<String> = (0..n_symbols).map(|i| format!("S{i:04}:US")).collect();
        let subjects: Vec<String> = symbols.iter().map(|s| format!("features.v1.1s.{s}")).collect();
        let base = [0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7];
        let total = (rate * seconds) as u64;
        let start = Instant::now();
        let mut sent: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_micros(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while sent < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
            while sent < due {
                let i = (sent % n_symbols as u64) as usize;
                let seq = seq0 + (sent / n_symbols as u64) as i64;
                let ts = now_ns();
                let mut values = String::with_capacity(16 * n_features);
                for j in 0..n_features {
                    let v = if j < base.len() { base[j] } else { 0.0 } + 1e-5 * (((seq as usize + j) % 7) as f64 - 3.0);
                    if j > 0 {
                        values.push(',');
                    }
                    values.push_str(&format!("{v}"));
                }
                let body = format!(
                    r#"{{"symbol_id":"{}","tf":"1s","ts":{ts},"known_at":{ts},"feature_set":"tick_v1","values":[{values}],"seq":{seq}}}"#,
                    symbols[i]
                );
                client.publish(subjects[i].clone(), body.into()).await.context("publish")?;
                sent += 1;
            }
        }
        client.flush().await?;
        let publish_s = start.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs_f64(drain_s);
        while received.load(Relaxed) < sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let lat = lat.lock().unwrap().clone();
        let doc = serde_json::json!({
            "rate": rate, "published": sent, "received": received.load(Relaxed), "publish_seconds": publish_s,
            "symbols": n_symbols, "latencies_ns": lat,
        });
        std::fs::write(&out, serde_json::to_vec(&doc)?).with_context(|| format!("write {out}"))?;
        anyhow::Ok(())
    })
}
