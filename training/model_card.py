"""A generated model card (Markdown) for every registered model: method, data, metrics vs baselines, limits."""

from __future__ import annotations

from pathlib import Path

from feature_store.model_contract import ModelMetadata

LIMITS = (
    "Forecasts are bucket distributions of log returns; the end buckets hold the tails, so moves beyond the "
    "outer edges are not resolved.",
    "Evidence is out of sample on the last held-out days only; regimes absent from training are not covered.",
    "Calibration (temperatures, conformal widening) was fitted on the days just before the test; it drifts "
    "with the market (see training.drift and the canary).",
)


def model_card(
    meta: ModelMetadata,
    *,
    method: str,
    data_versions: dict[str, int],
    metrics: dict[str, float],
    baselines: list[str],
    gates: dict | None = None,
    notes: list[str] | None = None,
) -> str:
    """Render the card: what the model is, what it was trained on, how it scored against each baseline."""
    lines = [
        f"# Model card: {meta.model_name} v{meta.model_version}",
        "",
        "## Method",
        method,
        "",
        f"- feature set `{meta.feature_set}` ({len(meta.feature_names)} features, lookback {meta.lookback}, tf {meta.tf})",
        f"- horizons {list(meta.horizons)} {meta.horizon_unit}; {meta.n_buckets} buckets "
        f"[{meta.bucket_edges_bps[0]}, {meta.bucket_edges_bps[-1]}] bps",
        f"- calibration temperatures {[round(t, 3) for t in meta.calibration_temperatures]}",
        f"- conformal alpha {meta.conformal_alpha}, widening {[round(q, 2) for q in meta.conformal_qhat_bps]} bps",
        "",
        "## Data versions (Delta)",
        *[f"- `{table}` version {version}" for table, version in sorted(data_versions.items())],
        "",
        "## Out-of-sample scores (lower log score is better)",
        "",
        "| horizon | " + " | ".join(["model", *baselines]) + " | ECE model |",
        "|---|" + "---|" * (len(baselines) + 2),
    ]
    for h in meta.horizons:
        row = [f"{metrics.get(f'{n}.log_score.h{h}', float('nan')):.4f}" for n in ["model", *baselines]]
        lines.append(f"| {h} | " + " | ".join(row) + f" | {metrics.get(f'model.ece.h{h}', float('nan')):.4f} |")
    if gates:
        lines += ["", "## Promotion gates", ""]
        lines += [f"- {g['name']}: **{g['status']}** - {g['detail']}" for g in gates.get("gates", [])]
    lines += ["", "## Limits", *[f"- {text}" for text in (*LIMITS, *(notes or []))], ""]
    return "\n".join(lines)


def write_card(path: Path, text: str) -> Path:
    """Write the card beside the model files."""
    Path(path).write_text(text)
    return Path(path)
