"""Regime features (``regime_v1``): online Bayesian change points and a forward-filtered 3-state HMM.

Both read each symbol's 1-bar log returns as they were known at each bar (point-in-time adjusted,
``feature_store.pit_prices``) and are strictly recursive: the value at t uses returns up to t only.

- BOCPD (Adams & MacKay 2007) with a Normal-Gamma prior (Student-t predictive) and an adaptive
  hazard 1 / lambda: lambda is the mean length of the runs completed so far (a change is detected
  when the most probable run length falls by more than ``short_run``), shrunk towards a prior
  ``prior_run`` with weight one run, so a calm series lengthens its expected runs and a restless
  one shortens them. The run-length posterior is truncated at ``max_run``.
  Features: expected run length, probability that the run is shorter than ``short_run``, hazard.
- HMM: hmmlearn's GaussianHMM with 3 states fitted walk-forward (first after ``min_train`` bars,
  then every ``refit`` bars, each time on all returns so far); between fits the parameters are
  frozen and the state probabilities are FORWARD-filtered (never smoothed). Fits use the last
  ``train_window`` returns and one BLAS thread. States are ordered by
  variance, so p_low / p_mid / p_high keep their meaning across refits.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import gammaln

from feature_store.bars.compute import prepare
from feature_store.registry import FeatureDef, FeatureSet, register

BARS = "silver.bars"
logging.getLogger("hmmlearn.base").setLevel(logging.ERROR)  # "not converging" notes on every short refit


@dataclass(frozen=True)
class RegimeConfig:
    """Parameters of both regime models (windows in bars)."""

    max_run: int = 300
    short_run: int = 5
    prior_run: float = 250.0  # prior mean run length (bars); hazard starts at 1 / prior_run
    prior_bars: int = 20  # returns that set the Normal-Gamma prior scale (values before are null)
    min_train: int = 252
    refit: int = 252
    train_window: int = 1000
    n_iter: int = 20
    seed: int = 7


CFG = RegimeConfig()


def _d(name: str, description: str, window: int = 0) -> FeatureDef:
    params = {"max_run": CFG.max_run, "short_run": CFG.short_run, "min_train": CFG.min_train, "refit": CFG.refit}
    return FeatureDef(name, params=params, input_table=BARS, window=window, description=description)


REGIME_V1 = register(
    FeatureSet(
        "regime_v1",
        "1d",
        (
            _d("bocpd_run_mean", "BOCPD expected run length (bars since the last change)"),
            _d("bocpd_short_prob", "BOCPD probability that the current run is shorter than short_run"),
            _d("bocpd_hazard", "BOCPD adaptive hazard (posterior mean change rate)"),
            _d("hmm_p_low", "HMM filtered probability of the low-variance state"),
            _d("hmm_p_mid", "HMM filtered probability of the middle state"),
            _d("hmm_p_high", "HMM filtered probability of the high-variance state"),
            _d("hmm_state", "HMM most probable filtered state (0 low, 1 mid, 2 high)"),
        ),
        "regime features from point-in-time 1-bar log returns",
    )
)


def bocpd(x: np.ndarray, cfg: RegimeConfig = CFG) -> np.ndarray:
    """Run BOCPD over ``x`` (NaN = no observation yet); returns (n, 3): run mean, short prob, hazard."""
    n = len(x)
    out = np.full((n, 3), np.nan)
    finite = np.flatnonzero(np.isfinite(x))
    if len(finite) <= cfg.prior_bars:
        return out
    first = finite[0]
    var0 = float(np.var(x[first : first + cfg.prior_bars])) or 1e-8
    mu0, k0, a0, b0 = 0.0, 1.0, 1.0, var0
    R = cfg.max_run
    p = np.array([1.0])
    mu, k, a, b = np.array([mu0]), np.array([k0]), np.array([a0]), np.array([b0])
    runs_sum, runs_n, last_map = cfg.prior_run, 1.0, 0
    runs = np.arange(R + 1, dtype=float)
    for t in range(first, n):
        xt = x[t]
        if not np.isfinite(xt):
            continue
        h = runs_n / runs_sum
        scale2 = b * (k + 1) / (a * k)
        z = (xt - mu) ** 2 / (2 * a * scale2)
        logpred = gammaln(a + 0.5) - gammaln(a) - 0.5 * np.log(2 * np.pi * a * scale2) - (a + 0.5) * np.log1p(z)
        pred = np.exp(logpred - logpred.max())
        grow = p * pred * (1 - h)
        cp = float((p * pred * h).sum())
        new = _fold(np.concatenate([[cp], grow]), R)
        p = new / new.sum()
        map_run = int(p.argmax())
        if map_run < last_map - cfg.short_run:  # a change point: the run that ended counts
            runs_sum, runs_n = runs_sum + last_map - map_run, runs_n + 1
        last_map = map_run
        mu_n = (k * mu + xt) / (k + 1)
        b_n = b + k * (xt - mu) ** 2 / (2 * (k + 1))
        mu = np.concatenate([[mu0], mu_n])[: R + 1]  # the folded longest run keeps the older run's stats
        k = np.concatenate([[k0], k + 1])[: R + 1]
        a = np.concatenate([[a0], a + 0.5])[: R + 1]
        b = np.concatenate([[b0], b_n])[: R + 1]
        if t - first >= cfg.prior_bars:
            m = len(p)
            out[t] = (float(p @ runs[:m]), float(p[: cfg.short_run].sum()), h)
    return out


def _fold(p: np.ndarray, r: int) -> np.ndarray:
    """Truncate a run-length distribution at ``r``: runs longer than r count as r (mass kept)."""
    if len(p) <= r + 1:
        return p
    out = p[: r + 1].copy()
    out[r] += p[r + 1 :].sum()
    return out


def _ordered(model) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start, transition, means and variances with states sorted by variance (low, mid, high)."""
    var = model.covars_.reshape(model.n_components, -1)[:, 0]
    o = np.argsort(var)
    return model.startprob_[o], model.transmat_[np.ix_(o, o)], model.means_[o, 0], var[o]


def hmm_filter(x: np.ndarray, cfg: RegimeConfig = CFG) -> np.ndarray:
    """Walk-forward fitted, forward-filtered 3-state HMM probabilities (n, 3); NaN before the first fit."""
    from hmmlearn.hmm import GaussianHMM
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=float) * 100.0  # percent returns: EM is badly scaled on raw 1e-2 values
    n = len(x)
    out = np.full((n, 3), np.nan)
    ok = np.isfinite(x)
    idx = np.flatnonzero(ok)
    if len(idx) < cfg.min_train:
        return out
    fit_at = set(idx[cfg.min_train - 1 :: cfg.refit].tolist())
    params = None
    alpha = None
    for t in idx:
        if t in fit_at:
            data = x[: t + 1][ok[: t + 1]][-cfg.train_window :].reshape(-1, 1)
            model = GaussianHMM(3, "diag", n_iter=cfg.n_iter, random_state=cfg.seed, min_covar=1e-10)
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(data)
            params = _ordered(model)
            if alpha is None:  # first fit: filter the training window forward with the new parameters
                alpha = params[0].copy()
                for s in idx[idx < t]:
                    alpha = _step(alpha, params, x[s])
        if params is None or alpha is None:
            continue
        alpha = _step(alpha, params, x[t])
        out[t] = alpha
    return out


def _step(alpha: np.ndarray, params, xt: float) -> np.ndarray:
    _, trans, means, var = params
    like = np.exp(-0.5 * (xt - means) ** 2 / var) / np.sqrt(2 * np.pi * var)
    post = (alpha @ trans) * like
    total = post.sum()
    return post / total if total > 0 and np.isfinite(total) else np.full(3, 1 / 3)


def regime_features(bars: pl.DataFrame, cfg: RegimeConfig = CFG) -> pl.DataFrame:
    """``regime_v1`` rows for bars of one timeframe (several symbols): one recursive pass per symbol."""
    b = prepare(bars)
    frames = []
    for _, g in b.group_by("symbol_id", maintain_order=True):
        r = np.log(g["close"].to_numpy())
        x = np.concatenate([[np.nan], np.diff(r)])
        bo, hm = bocpd(x, cfg), hmm_filter(x, cfg)
        state = np.where(np.isnan(hm[:, 0]), np.nan, np.nanargmax(np.nan_to_num(hm, nan=-1), axis=1).astype(float))
        frames.append(
            g.select(
                "symbol_id",
                pl.lit(REGIME_V1.tf).alias("tf"),
                "ts",
                pl.max_horizontal("known_at", "ts").cum_max().alias("known_at"),
                pl.lit(REGIME_V1.name).alias("feature_set"),
            ).with_columns(
                pl.Series("bocpd_run_mean", bo[:, 0]),
                pl.Series("bocpd_short_prob", bo[:, 1]),
                pl.Series("bocpd_hazard", bo[:, 2]),
                pl.Series("hmm_p_low", hm[:, 0]),
                pl.Series("hmm_p_mid", hm[:, 1]),
                pl.Series("hmm_p_high", hm[:, 2]),
                pl.Series("hmm_state", state),
            )
        )
    out = pl.concat(frames)
    return out.with_columns(pl.col(n).fill_nan(None) for n in REGIME_V1.names)
