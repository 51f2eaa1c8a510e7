//! `mps-featurizer`: the streaming featurizer (MARKET_DATA ticks in, FeatureUpdates out) in Rust.
//!
//! mps-featurizer --nats nats://127.0.0.1:4222 --sessions sessions.json [--consume jetstream|core]
//!                [--idle-exit SECONDS] [--heartbeat-lateness SECONDS] [--publish-jetstream]
//!                [--poll-ms 50] [--stats report.json [--latencies]] [--feature-set tick_v2]
//!                [--checkpoint-every SECONDS (2; 0: never)] [--orphan-sweep SECONDS (30)]
//!                | --print-feature-set
//!
//! The sessions file (exchange sessions of the feature set's calendar) is written by Python:
//! `mps featurizer` does it; `mps.featurizer_process.write_sessions` for tests and benchmarks.
//! Prints `ready` once consuming, and one `counts {...}` JSON line when it ends (an idle exit or
//! SIGTERM/SIGINT); `--stats` also writes the wall and CPU span of the input (and with
//! `--latencies` every event's processing time, wall and thread CPU).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use mps_scorer::featurizer::feature_set::TICK_V2;
use mps_scorer::featurizer::service::{run, Config, Consume};
use mps_scorer::featurizer::state::SessionBook;

const FLAGS: &[&str] = &[
    "nats",
    "sessions",
    "consume",
    "idle-exit",
    "heartbeat-lateness",
    "poll-ms",
    "stats",
    "feature-set",
    "checkpoint-every",
    "orphan-sweep",
];

fn parse_args() -> anyhow::Result<(HashMap<String, String>, bool, bool)> {
    let mut out = HashMap::new();
    let mut publish_js = false;
    let mut latencies = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--publish-jetstream" => {
                publish_js = true;
                continue;
            }
            "--latencies" => {
                latencies = true;
                continue;
            }
            "--print-feature-set" => {
                let fs = &*TICK_V2;
                let json =
                    serde_json::json!({"name": fs.name, "tf": fs.tf, "version": fs.version, "features": fs.names()});
                println!("{json}");
                std::process::exit(0);
            }
            "--help" | "-h" => {
                let usage: Vec<&str> = include_str!("mps-featurizer.rs")
                    .lines()
                    .skip(2)
                    .take(4)
                    .map(|l| l.trim_start_matches("//! "))
                    .collect();
                println!("{}", usage.join("\n"));
                std::process::exit(0);
            }
            _ => {}
        }
        let Some(name) = a.strip_prefix("--").filter(|n| FLAGS.contains(n)) else {
            bail!("unknown argument {a:?} (see --help)")
        };
        let value = args.next().with_context(|| format!("--{name} needs a value"))?;
        out.insert(name.to_string(), value);
    }
    Ok((out, publish_js, latencies))
}

fn seconds(args: &HashMap<String, String>, name: &str) -> anyhow::Result<Option<Duration>> {
    args.get(name)
        .map(|v| {
            let s: f64 = v.parse().with_context(|| format!("--{name} {v:?} is not a number"))?;
            if !(0.0..3600.0).contains(&s) {
                bail!("--{name} must be in [0, 3600) seconds, not {s}");
            }
            Ok(Duration::from_secs_f64(s))
        })
        .transpose()
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let (args, publish_jetstream, latencies) = parse_args()?;
    let fs = &*TICK_V2;
    if let Some(name) = args.get("feature-set").filter(|n| *n != &fs.name) {
        bail!("--feature-set {name}: this build embeds only {} (contracts/feature_sets/{}.json)", fs.name, fs.name);
    }
    let sessions_path = PathBuf::from(args.get("sessions").context("--sessions FILE is required (see --help)")?);
    let sessions = SessionBook::load(&sessions_path, &fs.default_calendar)?;
    let consume = match args.get("consume").map(String::as_str).unwrap_or("jetstream") {
        "jetstream" => Consume::JetStream,
        "core" => Consume::Core,
        other => bail!("--consume must be jetstream or core, not {other:?}"),
    };
    let poll_ms: u64 = args.get("poll-ms").map(|v| v.parse()).transpose().context("--poll-ms")?.unwrap_or(50);
    let stats = args.get("stats").map(PathBuf::from);
    if latencies && stats.is_none() {
        bail!("--latencies needs --stats FILE (where the times are written)");
    }
    let cfg = Config {
        nats_url: args.get("nats").cloned().unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        consume,
        publish_jetstream,
        idle_exit: seconds(&args, "idle-exit")?,
        heartbeat_lateness: seconds(&args, "heartbeat-lateness")?,
        poll: Duration::from_millis(poll_ms.max(1)),
        record_latencies: latencies && stats.is_some(),
        checkpoint_every: match seconds(&args, "checkpoint-every")? {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => Config::default().checkpoint_every,
        },
        orphan_sweep: seconds(&args, "orphan-sweep")?.unwrap_or(Config::default().orphan_sweep),
    };
    tracing::info!(sessions = sessions.len(), path = %sessions_path.display(), "sessions loaded");
    // One thread: the benchmark's "one core", and the NATS client's I/O runs beside the featurizer.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let report = rt.block_on(async move {
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        run(cfg, fs, sessions, shutdown).await
    })?;
    let counts = serde_json::json!({"service": report.service, "featurizer": report.featurizer, "ended": report.ended});
    println!("counts {counts}");
    if let Some(path) = stats {
        let text = serde_json::to_vec(&report).context("stats json")?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}
