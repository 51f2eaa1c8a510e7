"""The strategy file (seed MPS section 14): what to trade, on which data, with which model.

One YAML document, validated strictly: a typo is an error naming the key path. Sizing parameters
are not repeated here; the strategy names the sizing contract file that the Rust scorer and
``backtest/sizing.py`` both read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core.config import Strict, load_yaml_model
from core.resources import config_dir, contracts_dir

DEFAULT_STRATEGY = config_dir() / "strategy.yaml"


class Universe(Strict):
    symbols: list[str] = Field(min_length=1)
    sources: list[str] = Field(min_length=1, description="vendors reconciled into silver")


class Buckets(Strict):
    lo_bps: float = -50.0
    hi_bps: float = 50.0
    count: int = Field(101, ge=3)

    @model_validator(mode="after")
    def _ordered(self) -> Buckets:
        if self.hi_bps <= self.lo_bps:
            raise ValueError("hi_bps must be greater than lo_bps")
        return self


class ModelSpec(Strict):
    kind: Literal["tick", "bar"]
    name: str
    timeframe: str = Field(description="1s for the tick model; 1m..1d for bar models")
    horizons: list[int] = Field(min_length=1, description="seconds (tick) or bars (bar)")
    lookback: int = Field(ge=1, description="L: input window length")
    feature_set: str
    buckets: Buckets = Buckets()
    architecture: Literal["baseline", "lightgbm", "transformer", "tiny"] = "transformer"
    sizing: str | None = Field(
        None,
        description="this model's sizing contract (its features name the vol and ADV inputs); default the strategy's",
    )


class WalkForward(Strict):
    train_days: int = Field(ge=1)
    test_days: int = Field(ge=1)
    step_days: int = Field(ge=1)
    embargo_bars: int = Field(0, ge=0)


class ScoreWeights(Strict):
    """Production score (seed MPS 18): Sharpe - l1 sigma(Sharpe) - l2 ECE - l3 latency_ms ranks candidates."""

    l1: float = Field(1.0, ge=0.0)
    l2: float = Field(10.0, ge=0.0)
    l3: float = Field(0.1, ge=0.0, description="per millisecond of batch-1 p99 latency")


class Canary(Strict):
    """Champion vs challenger on live windows: roll back when the challenger is worse by these margins."""

    min_samples: int = Field(200, ge=1)
    max_ece_rise: float = Field(0.02, ge=0.0, description="challenger ECE - champion ECE above this rolls back")
    max_log_score_drop: float = Field(0.02, ge=0.0, description="nats per sample worse than the champion")


class DriftThresholds(Strict):
    """PSI / KL against the training reference above which a retrain event is emitted."""

    psi: float = Field(0.25, gt=0.0)
    kl: float = Field(0.1, gt=0.0)
    bins: int = Field(10, ge=2)


class Promotion(Strict):
    metric: Literal["crps", "log_loss", "brier"] = "crps"
    min_improvement: float = Field(0.0, ge=0.0, description="relative improvement over the champion")
    require_calibration: bool = True
    max_ece: float = Field(0.05, gt=0.0, description="gate: ECE of prob_up, every horizon")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0, description="block-bootstrap CI of the log-score gain")
    bootstrap_draws: int = Field(1000, ge=10)
    bootstrap_seed: int = 7
    min_sharpe_lower: float = Field(0.0, description="gate: backtest Sharpe lower CI bound must exceed this")
    latency_budget_ms: float = Field(1.0, gt=0.0, description="gate: exported model p99 at batch 1, one thread")
    score: ScoreWeights = ScoreWeights()
    canary: Canary = Canary()
    drift: DriftThresholds = DriftThresholds()


class Schedules(Strict):
    ingest: str = "*/5 * * * *"
    reconcile: str = "*/15 * * * *"
    train: str = "0 2 * * *"


class BacktestCosts(Strict):
    """Trading costs of the backtest engine (all in bps of traded notional unless named otherwise)."""

    fee_bps: float = Field(0.5, ge=0.0, description="exchange + broker fees per fill")
    half_spread_bps: float = Field(
        1.0, ge=0.0, description="spread proxy: half-spread paid per fill where no quotes give one"
    )
    slippage: Literal["sqrt", "linear", "none"] = Field(
        "sqrt", description="sqrt: k * sigma_daily * sqrt(q / ADV) (square-root impact); linear: k * q / ADV"
    )
    slippage_k: float = Field(1.0, ge=0.0, description="impact coefficient k")
    roll_cost_bps: float = Field(
        1.0, ge=0.0, description="futures: cost of one roll (both legs) on the rolled notional"
    )
    adv_days: int = Field(20, ge=1, description="trailing sessions for ADV and daily vol (past data only)")


class BacktestGuards(Strict):
    """Risk guards applied inside the engine's event loop."""

    max_nav_frac: float = Field(0.05, gt=0.0, description="max |exposure| per symbol, fraction of NAV")
    max_adv_share: float = Field(0.01, gt=0.0, description="max order size as a share of ADV")
    max_intraday_drawdown: float = Field(0.03, gt=0.0, description="kill switch: flatten for the rest of the session")


class BacktestSettings(Strict):
    """Backtest engine settings (DESIGN section 8): capital, costs, guards, statistics."""

    initial_cash: float = Field(10_000_000.0, gt=0.0)
    costs: BacktestCosts = BacktestCosts()
    guards: BacktestGuards = BacktestGuards()
    calendar: str | None = Field("XNYS", description="exchange-calendars name for sessions; null: every bar tradable")
    bootstrap_draws: int = Field(1000, ge=10)
    bootstrap_cluster: Literal["day", "week"] = "day"
    bootstrap_seed: int = 7
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)


class Strategy(Strict):
    name: str
    universe: Universe
    models: list[ModelSpec] = Field(min_length=1)
    walk_forward: WalkForward
    promotion: Promotion = Promotion()
    sizing: str = Field("sizing.json", description="sizing contract: a path, or a file name in the packaged contracts")
    schedules: Schedules = Schedules()
    backtest: BacktestSettings = BacktestSettings()

    def sizing_path(self, model: str | None = None) -> Path:
        """Return the sizing contract file of ``model`` (its own, else the strategy's): an existing path
        as given, else one of the packaged contracts."""
        spec = next((m for m in self.models if m.name == model), None)
        path = Path(spec.sizing if spec is not None and spec.sizing else self.sizing)
        return path.resolve() if path.exists() else contracts_dir() / path.name


def load_strategy(path: Path = DEFAULT_STRATEGY) -> Strategy:
    """Load and validate a strategy YAML file."""
    return load_yaml_model(Strategy, path)
