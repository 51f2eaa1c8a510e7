"""Real-data evaluation (DESIGN section 11): every model beside its baselines, per horizon, with day-block CIs.

``run_eval`` fits the models and baselines walk-forward by day on ``Windows`` (``training.real_data``)
and returns ``training.evaluate``'s tidy result; the ``*_table`` functions render it as Markdown:
scores per (horizon, model), log-score and RPS gains over each baseline with 95 % day-block
bootstrap CIs, and the targets of issue 10 checked row by row. ``m6_table`` scores 20-session
quintile-rank forecasts of a cross-section (the M6 measure; a uniform forecast scores 0.16).
Nothing here tunes toward a target: the figures are what the models give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from training.evaluate import EvalConfig, EvalData, EvalResult, evaluate
from training.factory import baselines as baseline_models
from training.factory import return_feature
from training.metrics import m6_rps, quintile_ranks
from training.models.base import Buckets
from training.real_data import Windows
from training.splits import WalkForwardConfig

Factory = Callable[[], object]


def model_factories(
    kind: str,
    buckets: Buckets,
    names: Sequence[str],
    horizons: Sequence[int],
    epochs: int,
    include: Sequence[str],
    trees: int = 300,
) -> tuple[dict[str, Factory], dict[str, Factory]]:
    """Fresh-model factories: (models, baselines) for a ``tick`` or ``bar`` evaluation."""
    from training.models.ewma_t import EwmaT, EwmaTConfig
    from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig

    ret = return_feature(names)
    unit = 1.0 if kind == "tick" else 1e4  # tick_v2 returns are in bps, bar_v1 log returns are plain
    base: dict[str, Factory] = {}
    for name in baseline_models(kind, buckets, names, horizons):
        if name == "ewma_t":
            base[name] = lambda: EwmaT(buckets, EwmaTConfig(ret_feature=ret, ret_unit_bps=unit))
        else:
            base[name] = _baseline(kind, buckets, names, horizons, name)
    models: dict[str, Factory] = {}
    if "lightgbm" in include:
        models["lightgbm"] = lambda: LightGBMBuckets(buckets, LightGBMConfig(n_estimators=trees))
    if "transformer" in include:
        from training.models.transformer import PriceTransformer, TransformerConfig

        tcfg = TransformerConfig(max_epochs=epochs, d_model=16, n_layers=1, d_ff=32, batch_size=256, num_threads=1)
        models["transformer"] = lambda: PriceTransformer(buckets, tcfg)
    return models, base


def _baseline(kind: str, buckets: Buckets, names: Sequence[str], horizons: Sequence[int], name: str) -> Factory:
    return lambda: baseline_models(kind, buckets, names, horizons)[name]


def run_eval(
    w: Windows,
    buckets: Buckets,
    models: Mapping[str, Factory],
    baselines: Mapping[str, Factory],
    n_folds: int,
    min_train_days: int,
    n_boot: int = 1000,
) -> EvalResult:
    """Walk-forward by day (expanding, purged by the longest label) and score everyone alike."""
    step_ns = int(np.median(np.diff(np.unique(w.times)))) if len(np.unique(w.times)) > 1 else 1
    data = EvalData(
        X=w.X, y=w.y, times=w.times, label_end=w.times + max(w.horizons) * _unit_ns(w, step_ns), day=w.day,
        buckets=buckets, r_bps=w.r_bps, horizons=w.horizons,
    )  # fmt: skip
    folds = WalkForwardConfig(n_folds=n_folds, min_train_units=min_train_days)
    return evaluate(data, models, baselines, EvalConfig(folds=folds, n_boot=n_boot))  # type: ignore[arg-type]


def _unit_ns(w: Windows, step_ns: int) -> int:
    """Length of one horizon unit: a second for ticks, a day (plus weekends: 3 days) for daily bars."""
    return 1_000_000_000 if step_ns < 3_600_000_000_000 else 3 * 86_400_000_000_000


def _fmt(x: float, nd: int = 4) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _coverage(res: EvalResult) -> pl.DataFrame:
    """Mean conformal coverage per (model, horizon) over the folds that have a band (all but the first)."""
    c = res.coverage.cast({"model": pl.String, "horizon": pl.Int64, "nominal": pl.Float64, "coverage": pl.Float64})
    return c.group_by("model", "horizon").agg(pl.col("coverage").mean(), pl.col("nominal").first())


def scores_table(res: EvalResult) -> str:
    """Pooled out-of-sample scores per (horizon, model), with mean conformal coverage over the folds."""
    s = res.scores.filter(pl.col("fold") == "all").pivot(on="metric", index=["model", "horizon"], values="value")
    cov = _coverage(res)
    s = s.join(cov, on=["model", "horizon"], how="left").sort("horizon", "log_score")
    lines = [
        "| horizon | model | n | log score | RPS | CRPS (bps) | ECE prob_up | dir acc | IC | coverage (nominal) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s.iter_rows(named=True):
        cov_txt = f"{_fmt(r['coverage'], 3)} ({_fmt(r['nominal'], 2)})" if r["coverage"] is not None else "n/a"
        lines.append(
            f"| {r['horizon']} | {r['model']} | {int(r['n'])} | {_fmt(r['log_score'])} | {_fmt(r['rps'], 5)} | "
            f"{_fmt(r['crps_bps'], 3)} | {_fmt(r['ece'])} | {_fmt(r['dir_acc'], 3)} | {_fmt(r['ic'], 3)} | {cov_txt} |"
        )
    return "\n".join(lines)


def gains_table(res: EvalResult, metric: str = "log_score") -> str:
    """Baseline score minus model score (positive = model better) with 95 % day-block bootstrap CIs."""
    d = res.diffs.filter(pl.col("metric") == metric)
    bases = sorted(d["baseline"].unique().to_list(), key=lambda b: (b != "climatology", b))
    lines = [
        f"| horizon | model | {' | '.join(f'gain vs {b} [95% CI]' for b in bases)} |",
        "|---:|---|" + "---|" * len(bases),
    ]
    for (h, m), g in sorted(d.group_by("horizon", "model"), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        cells = []
        for b in bases:
            row = g.filter(pl.col("baseline") == b)
            if row.height == 0:
                cells.append("-")
                continue
            r = row.row(0, named=True)
            star = " *" if r["lo"] is not None and np.isfinite(r["lo"]) and r["lo"] > 0 else ""
            cells.append(f"{r['mean']:+.4f} [{_fmt(r['lo'])}, {_fmt(r['hi'])}]{star}")
        lines.append(f"| {h} | {m} | {' | '.join(cells)} |")
    return "\n".join(lines)


def targets_table(res: EvalResult, max_ece: float = 0.02, coverage_tol: float = 0.02) -> str:
    """Issue 10's targets per model: log-score gain over climatology with CI > 0 at every horizon, ECE, coverage."""
    d = res.diffs.filter((pl.col("metric") == "log_score") & (pl.col("baseline") == "climatology"))
    s = res.scores.filter((pl.col("fold") == "all") & (pl.col("metric") == "ece"))
    cov = _coverage(res)
    lines = [
        "| model | beats climatology, CI > 0 | worst ECE (horizon) | worst |coverage - nominal| (horizon) |",
        "|---|---|---|---|",
    ]
    for model in sorted(s["model"].unique().to_list()):
        mine = d.filter(pl.col("model") == model)
        won = mine.filter(pl.col("lo") > 0).height
        beat = f"{won}/{mine.height} horizons" if mine.height else "(is climatology)"
        e = s.filter(pl.col("model") == model).sort("value").row(-1, named=True)
        c = cov.filter(pl.col("model") == model).with_columns((pl.col("coverage") - pl.col("nominal")).abs().alias("g"))
        if c.height:
            worst = c.sort("g").row(-1, named=True)
            cov_txt = f"{worst['g']:.3f} (h={worst['horizon']}) {'ok' if worst['g'] <= coverage_tol else 'MISSED'}"
        else:
            cov_txt = "n/a (one fold)"
        ece_ok = "ok" if e["value"] <= max_ece else "MISSED"
        lines.append(f"| {model} | {beat} | {e['value']:.4f} (h={e['horizon']}) {ece_ok} | {cov_txt} |")
    return "\n".join(lines)


def m6_scores(
    res: EvalResult,
    w: Windows,
    buckets: Buckets,
    horizon: int = 20,
    draws: int = 400,
    min_assets: int = 10,
    seed: int = 0,
) -> dict[str, tuple[float, int]]:
    """M6 RPS of each model's quintile-rank forecasts of the ``horizon``-session returns; (score, dates scored).

    Each date's cross-section (assets with a test forecast that date, at least ``min_assets``) is
    ranked into quintiles; a model's rank probabilities come from ``draws`` joint samples of its
    per-asset bucket distributions (independent across assets, uniform within a bucket).
    """
    h = w.horizons.index(horizon)
    idx = res.test_index
    times, realised = w.times[idx], w.r_bps[idx, h]
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[float, int]] = {}
    groups = [np.flatnonzero(times == t) for t in np.unique(times)]
    groups = [g for g in groups if len(g) >= min_assets]
    for name, p in res.predictions.items():
        total, n = 0.0, 0
        for g in groups:
            ranks = quintile_ranks(realised[g])
            probs = _rank_probs(p[g, h], buckets, draws, rng)
            total += m6_rps(probs, ranks) * len(g)
            n += len(g)
        out[name] = (total / n if n else float("nan"), len(groups))
    out["uniform"] = (m6_rps(np.full((5, 5), 0.2), np.arange(5)), len(groups))
    return out


def _rank_probs(p: np.ndarray, buckets: Buckets, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Quintile-rank probabilities (A, 5) of A assets from joint draws of their bucket distributions."""
    cdf = np.cumsum(p, axis=1)
    u = rng.uniform(size=(draws, p.shape[0]))
    k = np.minimum((u[:, :, None] > cdf[None, :, :]).sum(axis=2), p.shape[1] - 1)  # (draws, A) bucket index
    e = buckets.edges_bps
    x = e[k] + rng.uniform(size=k.shape) * (e[k + 1] - e[k])
    ranks = np.stack([quintile_ranks(row) for row in x])  # (draws, A)
    return np.stack([(ranks == q).mean(axis=0) for q in range(5)], axis=1)


def m6_table(scores: Mapping[str, tuple[float, int]]) -> str:
    """The M6 measure per model (lower is better; uniform 0.16)."""
    lines = ["| model | M6 RPS (20-session quintile ranks) | dates |", "|---|---:|---:|"]
    for name, (v, n) in sorted(scores.items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {name} | {_fmt(v, 5)} | {n} |")
    return "\n".join(lines)
