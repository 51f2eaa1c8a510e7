"""A Markdown report of one evaluation with PNG figures (matplotlib Agg), ready to log to MLflow.

Figures: reliability diagram of P(up) per horizon, log-score gain over each baseline by horizon
with bootstrap CIs, PIT histograms per model. Tables: pooled scores per model and horizon, score
differences to baselines with CIs, conformal coverage and, on simulated data, oracle skill shares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from training.evaluate import EvalResult
from training.metrics import pit, prob_up, realised_up, reliability
from training.models.base import Buckets

TABLE_METRICS = ("log_score", "rps", "crps_bps", "brier", "ece", "sharpness_bps", "dir_acc", "ic")


def _md_table(df: pl.DataFrame, digits: int = 4) -> str:
    cols = df.columns
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def _figures(res: EvalResult, y: np.ndarray, buckets: Buckets, horizons: list, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    H = len(horizons)
    r_up = realised_up(y, buckets)
    fig, axes = plt.subplots(1, H, figsize=(3.2 * H, 3.2), squeeze=False)
    for h, ax in enumerate(axes[0]):
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        for name, p in res.predictions.items():
            rel = reliability(prob_up(p[:, h], buckets), r_up[:, h])
            ok = rel["count"] > 0
            ax.plot(rel["mean_p"][ok], rel["freq"][ok], "o-", ms=3, label=name)
        ax.set_title(f"h={horizons[h]}")
        ax.set_xlabel("forecast P(up)")
    axes[0][0].set_ylabel("observed up rate")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "reliability.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    d = res.diffs.filter(pl.col("metric") == "log_score")
    bases = d["baseline"].unique().sort().to_list()
    fig, axes = plt.subplots(1, len(bases), figsize=(4 * len(bases), 3.2), squeeze=False)
    for ax, base in zip(axes[0], bases, strict=True):
        sub = d.filter(pl.col("baseline") == base)
        for name in sub["model"].unique().sort().to_list():
            s = sub.filter(pl.col("model") == name).sort("horizon")
            x = np.arange(len(s))
            ax.errorbar(
                x, s["mean"], yerr=[s["mean"] - s["lo"], s["hi"] - s["mean"]], fmt="o-", ms=3, capsize=2, label=name
            )
            ax.set_xticks(x, [str(v) for v in s["horizon"]])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"log-score gain over {base}")
        ax.set_xlabel("horizon")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "score_by_horizon.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    names = list(res.predictions)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], names, strict=True):
        ax.hist(pit(res.predictions[name][:, 0], y[:, 0], rng), bins=10, range=(0, 1), density=True)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(f"{name} PIT h={horizons[0]}", fontsize=8)
    fig.tight_layout()
    paths.append(out / "pit.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def write_report(res: EvalResult, y_all: np.ndarray, buckets: Buckets, out_dir: str | Path, title: str) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; return the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y_all)[res.test_index]
    horizons = res.scores["horizon"].unique(maintain_order=True).to_list()
    figs = _figures(res, y, buckets, horizons, out)
    pooled = (
        res.scores.filter((pl.col("fold") == "all") & pl.col("metric").is_in(TABLE_METRICS))
        .pivot(on="metric", index=["model", "horizon"], values="value")
        .sort("horizon", "model")
    )
    diffs = res.diffs.filter(pl.col("metric") == "log_score").sort("baseline", "model", "horizon")
    parts = [
        f"# {title}",
        "",
        f"{len(res.test_index)} out-of-sample windows over {len(np.unique(res.fold_of))} walk-forward folds.",
        "",
        "## Scores (pooled over folds; log score, RPS, CRPS, Brier, ECE: lower is better)",
        _md_table(pooled),
        "",
        "## Log-score gain over baselines (baseline minus model, nats; 95% block-bootstrap CI by day)",
        _md_table(diffs.drop("metric")),
        "",
    ]
    if res.coverage.height:
        cov = (
            res.coverage.group_by("model", "horizon", "nominal").agg(pl.col("coverage").mean()).sort("model", "horizon")
        )
        parts += ["## Conformal coverage (band calibrated on the previous fold)", _md_table(cov), ""]
    if res.skill.height:
        parts += [
            "## Share of the oracle's log-score gain over climatology",
            _md_table(res.skill.sort("horizon", "model")),
            "",
        ]
    parts += [f"![{p.stem}]({p.name})" for p in figs]
    md = out / "report.md"
    md.write_text("\n".join(parts) + "\n")
    return md
