"""Promotion gates (seed MPS section 18): out-of-sample evidence in, a decision with reasons out.

Pure functions over arrays, so the gates are tested on hand-made evidence and the flow only wires:

- ``ece``: expected calibration error of prob_up at every horizon at most ``max_ece``, judged on
  windows whose labels do not overlap (one every horizon) and against sampling noise: a horizon
  fails when its ECE exceeds both ``max_ece`` and what a calibrated forecast reaches by chance on
  those windows (``training.metrics.ece_by_chance``, 95 % over all horizons). On few independent windows (a 600 s
  horizon over two 35-minute test days gives 14 per symbol) the gate cannot tell calibration
  apart and says so, instead of refusing the simulator's own oracle (ECE 0.15 at 300 s there);
- ``log_score``: the candidate's per-sample log score (mean over horizons) is better than the
  champion's and every baseline's, with the lower bound of a block-bootstrap CI by day above zero
  (``training.metrics.block_bootstrap_ci``; fewer than 2 days give no CI, which fails);
- ``sharpe``: the backtest Sharpe's lower CI bound above ``min_sharpe_lower``. Training does not
  import backtest: ``flows/promote.py`` backtests the candidate's out-of-sample forecasts
  (``backtest.forecast_sharpe``: per-minute NAV returns, block bootstrap) and passes the figures in;
  an undefined CI (too few period returns, or no trades) fails; the gate is skipped only when no
  evidence could be built, and says why;
- ``latency``: the exported model's onnxruntime p99 at batch 1 within ``latency_budget_ms``.

A skipped gate never fails a candidate, and says so. The production score
``Sharpe - l1 sigma(Sharpe) - l2 ECE - l3 latency_ms`` ranks candidates (Sharpe terms are 0 when
there is no backtest evidence).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training import metrics
from training.metrics import ece, ece_by_chance, independent_rows, series_runs
from training.models.base import Buckets

PROB_FLOOR = 1e-12
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: status pass | fail | skipped, the measured value, the threshold and why."""

    name: str
    status: str
    value: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class SharpeEvidence:
    """A backtest's Sharpe ratio with its CI (from the backtest package, passed in by the flow)."""

    sharpe: float
    lower: float
    upper: float
    sigma: float
    sessions: int | None = None  # sessions the Sharpe rests on (the bootstrap clusters by session)
    note: str = ""  # what was traded (model, horizon, windows), shown with the gate


@dataclass(frozen=True)
class Decision:
    """All gates of one candidate and its production score."""

    gates: tuple[GateResult, ...]
    score: float
    summary: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.status != FAIL for g in self.gates)

    @property
    def reasons(self) -> list[str]:
        """Why the candidate was refused (empty when it passed)."""
        return [f"{g.name}: {g.detail}" for g in self.gates if g.status == FAIL]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "score": self.score, "gates": [asdict(g) for g in self.gates], **self.summary}


def prob_up(probs: np.ndarray, edges_bps: np.ndarray) -> np.ndarray:
    """P(up) per (sample, horizon): the mass of buckets whose mid is above zero (``training.metrics.prob_up``)."""
    return probs @ metrics.up_mask(Buckets(np.asarray(edges_bps, dtype=np.float64)))


def realised_up(y: np.ndarray, edges_bps: np.ndarray) -> np.ndarray:
    """1.0 where the realised bucket's mid is above zero, else 0.0 (``training.metrics.realised_up``).

    The bucket holding zero is flat: neither its forecast mass nor its outcomes count as up.
    """
    return metrics.realised_up(y, Buckets(np.asarray(edges_bps, dtype=np.float64)))


def sample_log_score(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Negative log probability of the realised bucket per (sample, horizon); lower is better."""
    picked = np.take_along_axis(probs, y[:, :, None], axis=2)[:, :, 0]
    return -np.log(np.maximum(picked, PROB_FLOOR))


def onnx_latency_ms(onnx_path: str | Path, n_runs: int = 300, batch: int = 1, repeats: int = 3) -> tuple[float, float]:
    """(p50, p99) in ms of one onnxruntime call on one thread for a random (batch, L, F) input.

    ``repeats`` rounds of ``n_runs`` calls; the round with the lowest p99 is reported: the model's
    latency, not the load other processes put on the machine (a demo whose gates ran beside a test
    suite read p99 4.5 ms for a model that reads 0.4-0.5 ms alone).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    x = np.random.default_rng(0).standard_normal((batch, int(shape[1]), int(shape[2]))).astype(np.float32)
    for _ in range(20):
        sess.run(None, {"features": x})
    rounds = []
    for _ in range(max(repeats, 1)):
        times = np.empty(n_runs)
        for i in range(n_runs):
            t0 = time.perf_counter()
            sess.run(None, {"features": x})
            times[i] = time.perf_counter() - t0
        rounds.append((float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)))
    return min(rounds, key=lambda r: r[1])


def evaluate_gates(
    candidate: np.ndarray,
    y: np.ndarray,
    days: np.ndarray,
    edges_bps: np.ndarray,
    cfg,
    *,
    champion: np.ndarray | None = None,
    baselines: dict[str, np.ndarray] | None = None,
    latency_p99_ms: float | None = None,
    sharpe: SharpeEvidence | None = None,
    sharpe_skipped: str = "no backtest evidence given",
    horizon_steps: tuple[int, ...] | None = None,
    series: np.ndarray | None = None,
) -> Decision:
    """Judge ``candidate`` probabilities (N, H, K) on labels ``y`` (N, H) against the gates of ``cfg``.

    ``cfg`` is the strategy's ``Promotion`` section; ``champion`` and ``baselines`` are the other
    forecasts on the same samples. ``horizon_steps``: each horizon in rows of the evidence (one row
    per decision step), so the ECE gate can keep windows whose labels do not overlap; None keeps
    every row. ``series``: each row's series (symbol), when rows of several interleave in time.
    Returns every gate's result (none short-circuits).
    """
    gates: list[GateResult] = []
    gates.append(ece_gate(candidate, y, days, edges_bps, cfg.max_ece, horizon_steps, series=series))
    up = realised_up(y, edges_bps)
    pu = prob_up(candidate, edges_bps)
    eces = [ece(pu[:, h], up[:, h]) for h in range(y.shape[1])]
    worst = float(max(eces))
    ls_cand = sample_log_score(candidate, y).mean(axis=1)
    rivals = {**({"champion": champion} if champion is not None else {}), **(baselines or {})}
    gains = {}
    for name, probs in rivals.items():
        diff = sample_log_score(probs, y).mean(axis=1) - ls_cand  # > 0: candidate better
        mean, lo, hi = metrics.block_bootstrap_ci(
            diff, days, n_boot=cfg.bootstrap_draws, level=cfg.ci_level, seed=cfg.bootstrap_seed
        )
        if horizon_steps:  # also over within-day blocks: the wider interval of the two is the one judged
            chunks = within_day_blocks(days, max(horizon_steps), series)
            _, lo_b, hi_b = metrics.block_bootstrap_ci(
                diff, chunks, n_boot=cfg.bootstrap_draws, level=cfg.ci_level, seed=cfg.bootstrap_seed
            )
            if np.isfinite(lo) and np.isfinite(lo_b):  # one day still gives no CI (it fails)
                lo, hi = min(lo, lo_b), max(hi, hi_b)
        gains[name] = {"mean": mean, "lower": lo, "upper": hi}
        gates.append(
            GateResult(
                f"log_score_vs_{name}",
                PASS if lo > 0 else FAIL,  # NaN (fewer than 2 days) fails
                mean,
                0.0,
                _log_score_detail(name, mean, lo, hi, cfg.ci_level, bool(horizon_steps)),
            )
        )
    if not rivals:
        gates.append(GateResult("log_score", SKIPPED, None, 0.0, "no champion and no baselines to compare with"))
    gates.append(sharpe_gate(sharpe, cfg.min_sharpe_lower, sharpe_skipped))
    if latency_p99_ms is None:
        gates.append(GateResult("latency", SKIPPED, None, cfg.latency_budget_ms, "latency not measured"))
    else:
        ok = latency_p99_ms <= cfg.latency_budget_ms
        gates.append(
            GateResult(
                "latency",
                PASS if ok else FAIL,
                latency_p99_ms,
                cfg.latency_budget_ms,
                f"onnxruntime p99 at batch 1 {latency_p99_ms:.3f} ms vs budget {cfg.latency_budget_ms} ms",
            )
        )
    w = cfg.score
    score = -w.l2 * worst - w.l3 * (latency_p99_ms or 0.0)
    if sharpe is not None and np.isfinite(sharpe.sharpe) and np.isfinite(sharpe.sigma):
        score += sharpe.sharpe - w.l1 * sharpe.sigma
    summary = {"ece_per_horizon": eces, "log_score": float(ls_cand.mean()), "gains": gains}  # all rows
    return Decision(tuple(gates), float(score), summary)


def _log_score_detail(name: str, mean: float, lo: float, hi: float, level: float, within_day: bool) -> str:
    head = f"log-score gain over {name} {mean:.4f} nats/sample"
    if not np.isfinite(lo):
        return f"{head}; no CI: day blocks need at least 2 test days"
    how = "the wider of day blocks and within-day blocks of the longest horizon" if within_day else "day blocks"
    return f"{head}, {level:.0%} CI [{lo:.4f}, {hi:.4f}] ({how})" + ("" if lo > 0 else " does not lie above 0")


def within_day_blocks(days: np.ndarray, rows: int, series: np.ndarray | None = None) -> np.ndarray:
    """A label per run of ``rows`` consecutive rows of one series on one day (windows one step apart).

    With two test days a day-block bootstrap has three distinct draws and its "95 %" interval is
    the range of the two days' means (the demo read [0.0754, 0.0757]); blocks as long as the longest
    horizon keep overlapping labels together and give the bootstrap enough blocks to resample.
    """
    group, pos = series_runs(days, series)
    return group.astype(np.int64) * (len(group) + 1) + pos // max(int(rows), 1)


def ece_gate(
    candidate: np.ndarray,
    y: np.ndarray,
    days: np.ndarray,
    edges_bps: np.ndarray,
    max_ece: float,
    horizon_steps: tuple[int, ...] | None = None,
    level: float = 0.95,
    series: np.ndarray | None = None,
) -> GateResult:
    """ECE of prob_up per horizon on non-overlapping windows, each against max(``max_ece``, chance).

    Chance is judged per horizon at ``1 - (1 - level) / H`` (Bonferroni), so a calibrated forecast
    is refused with probability at most ``1 - level`` over all H horizons together: at 95 % per
    horizon the simulator's own oracle failed 2 of 5 demo-sized test sets (8 horizons: 1 - 0.95^8 = 34 %).
    """
    up = realised_up(y, edges_bps)
    pu = prob_up(candidate, edges_bps)
    steps = horizon_steps or (1,) * y.shape[1]
    per_horizon = 1.0 - (1.0 - level) / y.shape[1]
    eces, bands = [], []
    for h in range(y.shape[1]):
        rows = independent_rows(days, steps[h], series)
        eces.append(ece(pu[rows, h], up[rows, h]))
        bands.append(ece_by_chance(pu[rows, h], per_horizon, draws=2000))
    allowed = np.maximum(max_ece, np.asarray(bands))
    excess = np.asarray(eces) - allowed
    worst = int(np.argmax(excess))
    ok = bool(np.all(excess <= 0))
    noisy = [h for h in range(len(bands)) if bands[h] > max_ece]
    detail = (
        f"ECE of prob_up per horizon on non-overlapping windows {np.round(eces, 4).tolist()}; allowed "
        f"max({max_ece}, what a calibrated forecast reaches by chance, {per_horizon:.2%} a horizon) = "
        f"{np.round(allowed, 4).tolist()}"
        + (f"; horizons {noisy} have too few windows to judge against {max_ece}" if noisy else "")
        + ("" if ok else f"; horizon {worst} exceeds it by {excess[worst]:.4f}")
    )
    return GateResult("ece", PASS if ok else FAIL, float(eces[worst]), float(allowed[worst]), detail)


def sharpe_gate(
    sharpe: SharpeEvidence | None, min_lower: float, skipped: str = "no backtest evidence given"
) -> GateResult:
    """The Sharpe gate: the backtest Sharpe's lower CI bound above ``min_lower``; an undefined bound fails."""
    if sharpe is None:
        return GateResult("sharpe", SKIPPED, None, min_lower, skipped)
    on = f" over {sharpe.sessions} sessions" if sharpe.sessions is not None else ""
    note = f" ({sharpe.note})" if sharpe.note else ""
    if not np.isfinite(sharpe.lower):
        detail = (
            f"Sharpe {sharpe.sharpe:.3f}{on}: CI undefined (too few period returns, or none varies: no trades){note}"
        )
        return GateResult("sharpe", FAIL, None, min_lower, detail)
    ok = sharpe.lower > min_lower
    detail = (
        f"backtest Sharpe {sharpe.sharpe:.3f}{on}, CI [{sharpe.lower:.3f}, {sharpe.upper:.3f}]; lower bound "
        f"{'above' if ok else 'not above'} min {min_lower}{note}"
    )
    return GateResult("sharpe", PASS if ok else FAIL, sharpe.lower, min_lower, detail)
