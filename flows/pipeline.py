"""The whole research path in order (DESIGN section 5): ingest -> reconcile -> featurize -> train ->
promote -> backtest, each step the flow of the same name run as a subflow.

Every step takes its window from the lake (``flows.watermarks``), so a scheduled run does the work
that new data calls for: the simulator's next session, silver for what bronze gained, gold features
for what silver gained. The model is the strategy's (the first one by default): a tick model
reconciles 1 s and 1 m bars and builds ``tick_v2`` (``featurize-ticks``), a bar model its own
timeframe with its feature set (``featurize``). Training registers a challenger, promotion judges
it, and the backtest trades the model's signals in gold (written by the streaming scorer; a run
with none skips the backtest and says so). ``train=False`` stops after the features; while gold
holds too few days to fit, calibrate and judge a model, the run stops there too and says how many
it has and needs (a fresh lake gains one session per scheduled run).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger

from core.errors import ConfigError
from core.profile import load_profile
from core.strategy import load_strategy
from core.timetypes import tf_ns, tf_rank
from flows.watermarks import feature_days, featurize_window, low_water

TICK_TIMEFRAMES = ["1s", "1m"]
CAL_DAYS = 1  # the days before the test window that calibrate (the train flow's default)


def _model(strategy, model_name: str | None):
    specs = {m.name: m for m in strategy.models}
    if model_name is not None and model_name not in specs:
        raise ConfigError(f"pipeline: model {model_name!r} not in the strategy (has {sorted(specs)})")
    return specs[model_name] if model_name else strategy.models[0]


def _featurize(spec, lake, symbols: list[str], profile: str) -> dict:
    """The model's feature step over the silver bars gold has not featurized yet."""
    from feature_store.gold import GOLD_FEATURES
    from flows.featurize import featurize
    from flows.featurize_ticks import featurize_ticks
    from lakehouse.tables import SILVER_BARS

    tf = "1s" if spec.kind == "tick" else spec.timeframe
    window = featurize_window(lake, GOLD_FEATURES, spec.feature_set, tf, symbols)
    if window is None:
        return {}
    start, end = window
    if spec.kind != "tick":
        sets, horizons = [spec.feature_set], list(spec.horizons)
        return featurize(
            start, end, tf=tf, feature_sets=sets, symbols=symbols, label_horizons=horizons, profile=profile
        )
    first = start or low_water(lake, SILVER_BARS) or end
    step = timedelta(microseconds=(tf_ns(tf) or 1_000_000_000) // 1000)
    return featurize_ticks(first, end + step, symbols, profile=profile)  # featurize-ticks takes [start, end)


@flow(name="pipeline")
def pipeline(
    model_name: str | None = None,
    profile: str = "local",
    symbols: list[str] | None = None,
    source: str = "simulator",
    source_params: dict | None = None,
    train: bool = True,
    fast: bool = False,
    test_days: int = 2,
    strategy_path: str | None = None,
) -> dict:
    """Run ingest, reconcile, featurize, train, promote and backtest in order; return each step's result.

    ``source_params`` go to the source with the symbols (e.g. the simulator's ``session_minutes``).
    """
    from flows.backtest import backtest
    from flows.ingest import ingest
    from flows.promote import promote
    from flows.reconcile import reconcile
    from flows.train import train as train_flow
    from lakehouse.storage import Lake

    logger = get_run_logger()
    strategy = load_strategy(Path(strategy_path)) if strategy_path else load_strategy()
    spec = _model(strategy, model_name)
    symbols = symbols or list(strategy.universe.symbols)
    lake = Lake.from_profile(load_profile(profile))
    out: dict = {"model": spec.name}
    out["ingest"] = ingest(source, {**(source_params or {}), "symbols": symbols}, profile=profile, catch_up=True)
    timeframes = TICK_TIMEFRAMES if spec.kind == "tick" else sorted({spec.timeframe, "1d"}, key=tf_rank)
    out["reconcile"] = reconcile(timeframes=timeframes, symbols=symbols, profile=profile, catch_up=True)
    out["featurize"] = _featurize(spec, lake, symbols, profile)
    if not train:
        return out
    held, needed = feature_days(lake, spec.feature_set, symbols), test_days + CAL_DAYS + 1
    if held < needed:  # a young lake: each scheduled run adds a session until there is enough to judge
        out["train"] = {
            "waiting": f"gold holds {held} day(s) of {spec.feature_set}; training needs {needed} "
            f"({test_days} test, {CAL_DAYS} calibration, at least 1 to fit)"
        }
        logger.info("training skipped: %s", out["train"]["waiting"])
        return out
    trained = train_flow(
        model_name=spec.name,
        profile=profile,
        strategy_path=strategy_path,
        symbols=symbols,
        fast=fast,
        test_days=test_days,
        cal_days=CAL_DAYS,
    )
    out["train"] = {k: trained[k] for k in ("version", "run_id", "onnx")}
    decision = promote(spec.name, trained["version"], profile=profile, strategy_path=strategy_path)
    out["promote"] = {k: decision[k] for k in ("version", "promoted", "reasons")}
    logger.info("%s v%s promoted: %s", spec.name, trained["version"], decision["promoted"])
    out["backtest"] = backtest(model=spec.name, symbols=symbols, profile=profile, strategy_path=strategy_path)
    return out
