//! `mps-scorer`: run the streaming scorer beside a NATS server.
//!
//! mps-scorer --nats nats://127.0.0.1:4222 --model-name tick_tiny [--model path.onnx]
//!            [--sizing contracts/sizing.json] [--mode jetstream|core] [--durable NAME]
//!            [--http 127.0.0.1:9464] [--max-batch 64] [--threads 1] [--device cpu|cuda|cuda-required]
//!            [--ort-lib /path/libonnxruntime.so.1.x] [--no-streams] [--workers 1]
//!            [--state-dir DIR] [--max-series 20000] [--max-future-ms 60000] [--max-seq-jump 1000000000]
//!            [--resend-depth 4] [--max-model-mb 1024] [--model-load-timeout-ms 60000]
//!            [--traces off|jsonl:PATH|otlp[:URL]] [--keep-inputs]
//!            | --print-contract | --check-sizing FILE
//!
//! The ONNX Runtime library comes from --ort-lib, else ORT_DYLIB_PATH, else the repo's .venv.
//! Traces (OpenTelemetry, off by default) from --traces, else MPS_SCORER_TRACES; see telemetry.rs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use std::time::Duration;

use mps_scorer::config::SizingConfig;
use mps_scorer::engine::Limits;
use mps_scorer::metrics::Metrics;
use mps_scorer::model::DEFAULT_MAX_MODEL_BYTES;
use mps_scorer::model::{init_runtime, Device, RuntimeOptions};
use mps_scorer::service::{run, Mode, ServiceConfig};

use mps_scorer::streaming::STREAMING;
use mps_scorer::telemetry::TraceExport;

const FLAGS: &[&str] = &[
    "nats",
    "model-name",
    "model",
    "sizing",
    "mode",
    "durable",
    "stream",
    "subject",
    "http",
    "max-batch",
    "threads",
    "device",
    "ort-lib",
    "workers",
    "state-dir",
    "max-series",
    "max-future-ms",
    "max-seq-jump",
    "resend-depth",
    "max-model-mb",
    "model-load-timeout-ms",
    "traces",
];

fn parse_args() -> anyhow::Result<(HashMap<String, String>, bool)> {
    let mut out = HashMap::new();
    let mut no_streams = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--no-streams" {
            no_streams = true;
            continue;
        }
        if a == "--keep-inputs" {
            out.insert("keep-inputs".into(), String::new()); // no trimming of FEATURES (retention.rs)
            continue;
        }
        if a == "--print-contract" {
            println!("{}", STREAMING.describe());
            std::process::exit(0);
        }
        if a == "--check-sizing" {
            // Validate a sizing file as the scorer would load it (parity test with backtest/sizing.py).
            let path = PathBuf::from(args.next().context("--check-sizing needs a path")?);
            match SizingConfig::load(&path) {
                Ok(_) => {
                    println!("ok");
                    std::process::exit(0)
                }
                Err(e) => {
                    println!("refused: {e}");
                    std::process::exit(2)
                }
            }
        }
        if a == "--help" || a == "-h" {
            println!(
                "{}",
                include_str!("main.rs")
                    .lines()
                    .skip(2)
                    .take(11)
                    .map(|l| l.trim_start_matches("//! "))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::process::exit(0);
        }
        let Some(name) = a.strip_prefix("--").filter(|n| FLAGS.contains(n)) else {
            bail!("unknown argument {a:?} (see --help)")
        };
        let value = args.next().with_context(|| format!("--{name} needs a value"))?;
        out.insert(name.to_string(), value);
    }
    Ok((out, no_streams))
}

fn num<T: std::str::FromStr>(args: &HashMap<String, String>, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    args.get(name).map(|v| v.parse::<T>()).transpose().with_context(|| format!("--{name}"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let (args, no_streams) = parse_args()?;
    let ort_lib = match args.get("ort-lib").cloned().or_else(|| std::env::var("ORT_DYLIB_PATH").ok()) {
        Some(p) => PathBuf::from(p),
        None => mps_scorer::find_ort_in_venv(&repo_root().join(".venv"))
            .context("find libonnxruntime (pass --ort-lib or set ORT_DYLIB_PATH)")?,
    };
    init_runtime(&ort_lib).context("load onnx runtime")?;
    let sizing = match args.get("sizing") {
        Some(path) => SizingConfig::load(&PathBuf::from(path)).context("read sizing config")?,
        None => SizingConfig::embedded().context("embedded sizing config")?,
    };
    let model_name = args.get("model-name").cloned().unwrap_or_else(|| "tick_tiny".into());
    let mode = match args.get("mode").map(String::as_str).unwrap_or("jetstream") {
        "core" => Mode::Core,
        "jetstream" => Mode::JetStream {
            stream: args
                .get("stream")
                .cloned()
                .or_else(|| STREAMING.stream_of("features").map(String::from))
                .context("no stream captures features")?,
            durable: args.get("durable").cloned().unwrap_or_else(|| format!("scorer-{model_name}")),
        },
        other => bail!("--mode must be jetstream or core, not {other:?}"),
    };
    let device = match args.get("device").map(String::as_str).unwrap_or("cpu") {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda { required: false },
        "cuda-required" => Device::Cuda { required: true },
        other => bail!("--device must be cpu, cuda or cuda-required, not {other:?}"),
    };
    let defaults = Limits::default();
    let cfg = ServiceConfig {
        nats_url: args.get("nats").cloned().unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        model_name,
        bootstrap_model: args.get("model").map(PathBuf::from),
        sizing,
        runtime: RuntimeOptions {
            intra_threads: args.get("threads").map(|t| t.parse()).transpose().context("--threads")?.unwrap_or(1),
            device,
        },
        mode,
        subject: args.get("subject").cloned().unwrap_or_else(|| STREAMING.template("features").pattern()),
        max_batch: args.get("max-batch").map(|t| t.parse()).transpose().context("--max-batch")?.unwrap_or(64),
        http_addr: args.get("http").map(|a| a.parse()).transpose().context("--http")?,
        ensure_streams: !no_streams,
        trim_inputs: (!args.contains_key("keep-inputs")).then_some(Duration::from_secs(1)),
        limits: Limits {
            max_series: num(&args, "max-series")?.unwrap_or(defaults.max_series),
            max_future_ns: num::<i64>(&args, "max-future-ms")?
                .map(|ms| ms.saturating_mul(1_000_000))
                .unwrap_or(defaults.max_future_ns),
            max_seq_jump: num(&args, "max-seq-jump")?.unwrap_or(defaults.max_seq_jump),
            resend_depth: num(&args, "resend-depth")?.unwrap_or(defaults.resend_depth),
        },
        state_dir: args.get("state-dir").map(PathBuf::from),
        max_model_bytes: num::<u64>(&args, "max-model-mb")?.map(|mb| mb << 20).unwrap_or(DEFAULT_MAX_MODEL_BYTES),
        model_load_timeout: Duration::from_millis(num(&args, "model-load-timeout-ms")?.unwrap_or(60_000)),
        traces: match args.get("traces").cloned().or_else(|| std::env::var("MPS_SCORER_TRACES").ok()) {
            Some(spec) => TraceExport::parse(&spec)?,
            None => TraceExport::Off,
        },
    };
    // One scoring loop: a single-threaded runtime avoids cross-thread hand-offs on the hot path.
    let workers: usize = args.get("workers").map(|t| t.parse()).transpose().context("--workers")?.unwrap_or(1);
    let runtime = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
    .context("start tokio")?;
    let result = runtime.block_on(async move {
        let metrics = Arc::new(Metrics::default());
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        };
        run(cfg, metrics, shutdown).await.context("scorer")
    });
    // A model load stuck in a blocking thread (a path that never answers) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}
