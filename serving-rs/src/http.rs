//! A minimal HTTP/1.1 server for `/health` and `/metrics` (no framework: two GET routes).

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Serve until `shutdown` resolves.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let (status, ctype, body) = respond(&buf[..n], &metrics);
                    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
}

fn respond(request: &[u8], metrics: &Metrics) -> (&'static str, &'static str, String) {
    let line = request.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", "text/plain", "GET only\n".into());
    }
    match path {
        "/health" => {
            let (name, version, sha) = metrics.model();
            let ready = metrics.ready.load(std::sync::atomic::Ordering::Relaxed);
            let connected = metrics.nats_connected.load(std::sync::atomic::Ordering::Relaxed);
            let status = match (ready, connected) {
                (false, _) => "starting",
                (true, false) => "degraded",
                (true, true) => "ok",
            };
            let body = serde_json::json!({
                "status": status, "nats": if connected { "connected" } else { "unreachable" },
                "model": name, "model_version": version, "sha256": sha,
                "updates": metrics.updates.load(std::sync::atomic::Ordering::Relaxed),
                "signals": metrics.signals.load(std::sync::atomic::Ordering::Relaxed),
                "challenger_version": metrics.challenger().map(|(_, v, _)| v),
                "shadow_signals": metrics.shadow_signals.load(std::sync::atomic::Ordering::Relaxed),
            });
            (if status == "ok" { "200 OK" } else { "503 Service Unavailable" }, "application/json", body.to_string())
        }
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}
